/* Ground truth for user stacks: blocks N times in one way through glibc, always under the same
 * chain of named functions (main -> flightrec_level1 -> flightrec_level2 -> flightrec_block_MODE),
 * and prints how long it was blocked, measured around the blocking calls, in all and per round
 * (`round W0 W1 NS`: the round's CLOCK_MONOTONIC bounds, the kernel's event clock, and its time).
 *
 *   stacks MODE [N] [MS]      MODE: nanosleep usleep pipe pwrite cond mutex epoll futex spin
 *                                   clobber (blocks in code without CFI and with a made-up frame
 *                                   pointer whose frame names flightrec_wrong_parent)
 *                                   noreturn (sleeps under a call that never returns, made as
 *                                   its function's last instruction, and exits)
 *                                   signal (raises a signal whose handler sleeps)
 *                                   realign (sleeps under code that keeps its CFA in rbx and
 *                                   rounds its stack down, as ld.so's lazy-binding trampoline)
 *                                   deep (sleeps under six frames of 4 KiB each: a stack deeper
 *                                   than 24 KiB)
 * spin burns MS of CPU N times instead. Built by the tests with and without frame pointers, -O0
 * and -O2. Every call is followed by a compiler barrier so -O2 keeps each caller's frame. It
 * first idles 100 ms, so the recorder reads its mappings while it lives (a process that execs and
 * exits within a few milliseconds may be gone first: README, Limits). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static int n = 10, ms = 30;
static long blocked_ns;
static int pipefd[2];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int ready;

static long now_ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void pause_ms(int m) {
    struct timespec ts = {0, m * 1000000L};
    while (nanosleep(&ts, &ts)) {
    }
}

/* What a round counts: the time off CPU (wall clock less the thread's CPU time: a direct write
 * also spends real time on CPU submitting it), or for spin the CPU time (on a busy machine a
 * burn takes longer than the CPU it burns, and samples count CPU). */
static int count_cpu;

/* Ends a round that began at thread CPU time c0 and wall time w0: adds what it counts and prints
 * it with the round's bounds, so a test can leave out a round it cannot measure. */
static void round_end(long c0, long w0) {
    long w1 = now_ns(CLOCK_MONOTONIC);
    long cpu = now_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    long counted = count_cpu ? cpu : (w1 - w0) - cpu;
    blocked_ns += counted;
    printf("round %ld %ld %ld\n", w0, w1, counted);
}

/* Helpers on another thread that release the main thread after `ms`. */
static void *writer(void *arg) {
    (void)arg;
    for (int i = 0; i < n; i++) {
        pause_ms(ms);
        if (write(pipefd[1], "x", 1) != 1) abort();
    }
    return 0;
}

static void *signaller(void *arg) {
    (void)arg;
    for (int i = 0; i < n; i++) {
        pause_ms(ms);
        pthread_mutex_lock(&lock);
        ready++;
        pthread_cond_signal(&cond);
        pthread_mutex_unlock(&lock);
    }
    return 0;
}

static volatile int holder_go;
static void *holder(void *arg) {
    (void)arg;
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&lock);
        holder_go = 1;
        pause_ms(ms);
        pthread_mutex_unlock(&lock);
        /* Let the main thread take it. */
        while (holder_go) sched_yield();
    }
    return 0;
}

/* Code without CFI that puts a made-up frame pointer in rbp, whose "caller" is
 * flightrec_wrong_parent, then sleeps in a raw syscall: a frame-pointer walk names the wrong
 * parent; an unwinder that needs CFI must stop at the leaf. */
__attribute__((noinline)) void flightrec_wrong_parent(void) {
    for (volatile int i = 0; i < 3; i++) KEEP_FRAME();
}
__asm__(".data\n"
        ".balign 16\n"
        "flightrec_fake_frame:\n"
        "  .quad 0\n"
        "  .quad flightrec_wrong_parent + 5\n"
        ".text\n"
        ".globl flightrec_clobbered_sleep\n"
        "flightrec_clobbered_sleep:\n"
        "  push %rbp\n"
        "  lea flightrec_fake_frame(%rip), %rbp\n"
        "  xor %esi, %esi\n"
        "  mov $35, %eax\n" /* nanosleep(rdi, NULL) */
        "  syscall\n"
        "  pop %rbp\n"
        "  ret\n");
void flightrec_clobbered_sleep(const struct timespec *ts);

__attribute__((noinline)) void flightrec_block_nanosleep(void) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, 0);
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_block_usleep(void) {
    usleep(ms * 1000);
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_block_pipe(void) {
    char c;
    if (read(pipefd[0], &c, 1) != 1) abort();
    KEEP_FRAME();
}

/* 4 MiB a write: long enough on a fast virtual disk that the time blocked dwarfs what the
 * harness cannot measure (its own clock reads, a hypervisor's steal). */
#define WRITE_BYTES (4 << 20)
static int fd;
static char *block;
__attribute__((noinline)) void flightrec_block_pwrite(void) {
    if (pwrite(fd, block, WRITE_BYTES, 0) != WRITE_BYTES) abort();
    fsync(fd);
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_block_cond(void) {
    pthread_mutex_lock(&lock);
    while (!ready) pthread_cond_wait(&cond, &lock);
    ready--;
    pthread_mutex_unlock(&lock);
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_block_mutex(void) {
    while (!holder_go) sched_yield();
    pthread_mutex_lock(&lock);
    holder_go = 0;
    pthread_mutex_unlock(&lock);
    KEEP_FRAME();
}

static int ep;
__attribute__((noinline)) void flightrec_block_epoll(void) {
    struct epoll_event ev;
    epoll_wait(ep, &ev, 1, ms);
    KEEP_FRAME();
}

static uint32_t futex_word;
__attribute__((noinline)) void flightrec_block_futex(void) {
    struct timespec ts = {0, ms * 1000000L};
    syscall(SYS_futex, &futex_word, FUTEX_WAIT, 0, &ts, 0, 0);
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_block_spin(void) {
    long end = now_ns(CLOCK_THREAD_CPUTIME_ID) + ms * 1000000L;
    volatile unsigned long x = 0;
    while (now_ns(CLOCK_THREAD_CPUTIME_ID) < end)
        for (int i = 0; i < 1000; i++) x += i;
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_block_clobber(void) {
    struct timespec ts = {0, ms * 1000000L};
    flightrec_clobbered_sleep(&ts);
    KEEP_FRAME();
}

/* A call that never returns as the last instruction of its function: its return address is the
 * first byte of the next function, flightrec_after_noreturn, which nobody calls. Named as it is,
 * the return address names that function; named by the call before it, the caller. */
__attribute__((noinline, noreturn)) void flightrec_sleep_then_exit(void) {
    for (int i = 0; i < n; i++) {
        long c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        long w0 = now_ns(CLOCK_MONOTONIC);
        pause_ms(ms);
        round_end(c0, w0);
    }
    printf("blocked_ns %ld\n", blocked_ns);
    fflush(stdout);
    _exit(0);
}
__asm__(".text\n"
        ".globl flightrec_block_noreturn\n"
        ".type flightrec_block_noreturn, @function\n"
        "flightrec_block_noreturn:\n"
        "  .cfi_startproc\n"
        "  sub $8, %rsp\n"
        "  .cfi_adjust_cfa_offset 8\n"
        "  call flightrec_sleep_then_exit\n"
        "  .cfi_endproc\n"
        ".size flightrec_block_noreturn, .-flightrec_block_noreturn\n"
        ".globl flightrec_after_noreturn\n"
        ".type flightrec_after_noreturn, @function\n"
        "flightrec_after_noreturn:\n"
        "  .cfi_startproc\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size flightrec_after_noreturn, .-flightrec_after_noreturn\n");
void flightrec_block_noreturn(void);

/* Code that realigns its stack as ld.so's _dl_runtime_resolve does: it saves rbx, keeps its CFA
 * in rbx and rounds rsp down to 64 bytes, so no offset from rsp finds its caller. */
__attribute__((noinline)) void flightrec_realigned_sleep(void) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, 0);
    KEEP_FRAME();
}
__asm__(".text\n"
        ".globl flightrec_block_realign\n"
        ".type flightrec_block_realign, @function\n"
        "flightrec_block_realign:\n"
        "  .cfi_startproc\n"
        "  push %rbx\n"
        "  .cfi_adjust_cfa_offset 8\n"
        "  .cfi_rel_offset %rbx, 0\n"
        "  mov %rsp, %rbx\n"
        "  .cfi_def_cfa_register %rbx\n"
        "  and $-64, %rsp\n"
        "  sub $64, %rsp\n"
        "  call flightrec_realigned_sleep\n"
        "  mov %rbx, %rsp\n"
        "  .cfi_def_cfa_register %rsp\n"
        "  pop %rbx\n"
        "  .cfi_adjust_cfa_offset -8\n"
        "  .cfi_restore %rbx\n"
        "  ret\n"
        "  .cfi_endproc\n"
        ".size flightrec_block_realign, .-flightrec_block_realign\n");
void flightrec_block_realign(void);

/* A stack deeper than 24 KiB: six calls of a function with a 4 KiB frame, then a sleep. */
__attribute__((noinline)) void flightrec_deep_sleep(void) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, 0);
    KEEP_FRAME();
}
__attribute__((noinline)) void flightrec_deep(int level) {
    volatile char pad[4096];
    pad[0] = (char)level;
    pad[sizeof pad - 1] = pad[0];
    if (level == 0)
        flightrec_deep_sleep();
    else
        flightrec_deep(level - 1);
    KEEP_FRAME();
    (void)pad[100];
}
__attribute__((noinline)) void flightrec_block_deep(void) {
    flightrec_deep(5);
    KEEP_FRAME();
}

/* A handler that blocks: its stack goes through the signal frame (glibc's __restore_rt, whose
 * CFI points at the registers the kernel saved) into the code the signal interrupted (raise),
 * and on to main. */
__attribute__((noinline)) void flightrec_signal_handler(int sig) {
    (void)sig;
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, 0);
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_block_signal(void) {
    raise(SIGUSR1);
    KEEP_FRAME();
}

static void (*block_fn)(void);

__attribute__((noinline)) void flightrec_level2(void) {
    for (int i = 0; i < n; i++) {
        /* The thread's CPU clock is a syscall (a point where it can be preempted): it brackets
         * the wall-clock reads (vDSO), so such a preemption is outside the measured window. */
        long c0 = now_ns(CLOCK_THREAD_CPUTIME_ID);
        long w0 = now_ns(CLOCK_MONOTONIC);
        block_fn();
        round_end(c0, w0);
    }
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_level1(void) {
    flightrec_level2();
    KEEP_FRAME();
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: stacks MODE [N] [MS]\n");
        return 2;
    }
    const char *mode = argv[1];
    if (argc > 2) n = atoi(argv[2]);
    if (argc > 3) ms = atoi(argv[3]);
    pthread_t t;
    int helper = 0;
    if (!strcmp(mode, "nanosleep")) block_fn = flightrec_block_nanosleep;
    else if (!strcmp(mode, "usleep")) block_fn = flightrec_block_usleep;
    else if (!strcmp(mode, "pipe")) {
        block_fn = flightrec_block_pipe;
        if (pipe(pipefd)) return 1;
        helper = !pthread_create(&t, 0, writer, 0);
    } else if (!strcmp(mode, "pwrite")) {
        block_fn = flightrec_block_pwrite;
        /* Direct writes wait for the device: the call is mostly off CPU. */
        char path[] = "/var/tmp/flightrec-stacks-XXXXXX";
        int tmp = mkstemp(path);
        fd = open(path, O_WRONLY | O_DIRECT);
        unlink(path);
        close(tmp);
        if (fd < 0 || posix_memalign((void **)&block, 4096, WRITE_BYTES)) return 1;
        memset(block, 0xa5, WRITE_BYTES);
    } else if (!strcmp(mode, "cond")) {
        block_fn = flightrec_block_cond;
        helper = !pthread_create(&t, 0, signaller, 0);
    } else if (!strcmp(mode, "mutex")) {
        block_fn = flightrec_block_mutex;
        helper = !pthread_create(&t, 0, holder, 0);
    } else if (!strcmp(mode, "epoll")) {
        block_fn = flightrec_block_epoll;
        ep = epoll_create1(0);
    } else if (!strcmp(mode, "futex")) block_fn = flightrec_block_futex;
    else if (!strcmp(mode, "spin")) {
        block_fn = flightrec_block_spin;
        count_cpu = 1;
    }
    else if (!strcmp(mode, "clobber")) block_fn = flightrec_block_clobber;
    else if (!strcmp(mode, "noreturn")) block_fn = flightrec_block_noreturn;
    else if (!strcmp(mode, "realign")) block_fn = flightrec_block_realign;
    else if (!strcmp(mode, "deep")) block_fn = flightrec_block_deep;
    else if (!strcmp(mode, "signal")) {
        block_fn = flightrec_block_signal;
        signal(SIGUSR1, flightrec_signal_handler);
    }
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    pause_ms(100);
    flightrec_level1();
    if (helper) pthread_join(t, 0);
    printf("blocked_ns %ld\n", blocked_ns);
    return 0;
}
