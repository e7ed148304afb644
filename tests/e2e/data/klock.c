/* Ground truth for kernel lock contention: one thread holds a pipe's mutex for a known time and
 * another waits for it. The holder write()s to the pipe from a buffer whose page is registered
 * with userfaultfd: the kernel faults while copying it inside pipe_write, with the pipe's mutex
 * held, and waits for this program to supply the page. Once the fault is reported, a second
 * thread write()s to the same pipe and waits for the mutex in the kernel; after MS milliseconds
 * the page is supplied, the holder's copy finishes and releases the mutex. Prints how long the
 * waiter's write took, measured around it.
 *
 *   klock [MS] */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int pipefd[2];
static char *region;
static long waited_ns;

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void pause_ms(int m) {
    struct timespec ts = {m / 1000, (m % 1000) * 1000000L};
    while (nanosleep(&ts, &ts)) {
    }
}

static void *holder(void *arg) {
    (void)arg;
    /* Faults inside pipe_write, holding pipe->mutex, until the page is supplied. */
    if (write(pipefd[1], region, 4096) != 4096) abort();
    return 0;
}

__attribute__((noinline)) void *flightrec_lock_waiter(void *arg) {
    (void)arg;
    long t0 = now_ns();
    if (write(pipefd[1], "x", 1) != 1) abort();
    waited_ns = now_ns() - t0;
    return 0;
}

int main(int argc, char **argv) {
    int ms = argc > 1 ? atoi(argv[1]) : 300;
    pause_ms(100);
    if (pipe(pipefd)) abort();
    /* Room for both writes: neither waits for a reader. */
    fcntl(pipefd[1], F_SETPIPE_SZ, 1 << 16);
    int uffd = syscall(SYS_userfaultfd, O_CLOEXEC);
    if (uffd < 0) {
        perror("userfaultfd");
        return 2;
    }
    struct uffdio_api api = {.api = UFFD_API};
    if (ioctl(uffd, UFFDIO_API, &api)) abort();
    region = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED) abort();
    struct uffdio_register reg = {
        .range = {.start = (unsigned long)region, .len = 4096},
        .mode = UFFDIO_REGISTER_MODE_MISSING,
    };
    if (ioctl(uffd, UFFDIO_REGISTER, &reg)) abort();

    pthread_t h, w;
    pthread_create(&h, 0, holder, 0);
    struct pollfd p = {.fd = uffd, .events = POLLIN};
    if (poll(&p, 1, 5000) != 1) abort();
    struct uffd_msg msg;
    if (read(uffd, &msg, sizeof msg) != sizeof msg || msg.event != UFFD_EVENT_PAGEFAULT) abort();
    /* The holder is inside pipe_write with the mutex held: now the waiter contends. */
    pthread_create(&w, 0, flightrec_lock_waiter, 0);
    pause_ms(ms);
    static char page[4096] __attribute__((aligned(4096)));
    memset(page, 'y', sizeof page);
    struct uffdio_copy copy = {
        .dst = msg.arg.pagefault.address & ~4095UL,
        .src = (unsigned long)page,
        .len = 4096,
    };
    if (ioctl(uffd, UFFDIO_COPY, &copy)) abort();
    pthread_join(h, 0);
    pthread_join(w, 0);
    printf("waited_ns %ld\n", waited_ns);
    pause_ms(100);
    return 0;
}
