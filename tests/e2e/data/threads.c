/* Ground truth for stacks back from clone3: main -> flightrec_spawn creates 640 threads, 16 at a
 * time, each burning 2 ms of CPU, and joins them. On two CPUs some threads and some returns of
 * the parent are preempted on their way back from the syscall, in clone3's code without CFI: the
 * parent's leaf is then under pthread_create, a new thread's has nothing above it. Then main ->
 * flightrec_spawn_processes starts /bin/true 20 times with posix_spawn, whose parent waits inside
 * clone3 (CLONE_VFORK) until the child execs: every time, in the same code; and
 * main -> flightrec_vfork_processes does the same 20 times with vfork, whose parent waits with
 * its return address in rdi. It first idles 100 ms, so the recorder reads its mappings. */
#include <pthread.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void *work(void *arg) {
    (void)arg;
    long end = now_ns() + 2000000;
    while (now_ns() < end) {
    }
    return 0;
}

__attribute__((noinline)) void flightrec_spawn(int n) {
    pthread_t t[16];
    for (int r = 0; r < n / 16; r++) {
        for (int i = 0; i < 16; i++)
            if (pthread_create(&t[i], 0, work, 0)) return;
        for (int i = 0; i < 16; i++) pthread_join(t[i], 0);
    }
}

__attribute__((noinline)) void flightrec_spawn_processes(int n) {
    char *argv[] = {"/bin/true", 0};
    for (int i = 0; i < n; i++) {
        pid_t p;
        if (posix_spawn(&p, "/bin/true", 0, 0, argv, environ)) return;
        waitpid(p, 0, 0);
    }
}

__attribute__((noinline)) void flightrec_vfork_processes(int n) {
    for (int i = 0; i < n; i++) {
        pid_t p = vfork();
        if (p == 0) {
            execl("/bin/true", "true", (char *)0);
            _exit(127);
        }
        if (p < 0) return;
        waitpid(p, 0, 0);
    }
}

int main(void) {
    struct timespec t = {0, 100000000};
    nanosleep(&t, 0);
    flightrec_spawn(640);
    flightrec_spawn_processes(20);
    flightrec_vfork_processes(20);
    return 0;
}
