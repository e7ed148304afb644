/* Ground truth for wake-ups: the main thread blocks N times reading a pipe under a known chain
 * (main -> flightrec_sleeper_level1 -> flightrec_sleep_on_pipe), and a second thread wakes it each
 * time, MS milliseconds later, by writing under another known chain (flightrec_waker_thread ->
 * flightrec_waker_level1 -> flightrec_wake). Prints the time the main thread was blocked in its
 * reads, measured around them. It first idles 100 ms, so the recorder reads its mappings while it
 * lives.
 *
 *   wakeups [N] [MS] */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static int n = 20, ms = 20;
static int pipefd[2];

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

static void pause_ms(int m) {
    struct timespec ts = {0, m * 1000000L};
    while (nanosleep(&ts, &ts)) {
    }
}

__attribute__((noinline)) void flightrec_wake(void) {
    if (write(pipefd[1], "x", 1) != 1) abort();
    KEEP_FRAME();
}

__attribute__((noinline)) void flightrec_waker_level1(void) {
    flightrec_wake();
    KEEP_FRAME();
}

__attribute__((noinline)) void *flightrec_waker_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < n; i++) {
        pause_ms(ms);
        flightrec_waker_level1();
    }
    KEEP_FRAME();
    return 0;
}

__attribute__((noinline)) void flightrec_sleep_on_pipe(void) {
    char c;
    if (read(pipefd[0], &c, 1) != 1) abort();
    KEEP_FRAME();
}

__attribute__((noinline)) long flightrec_sleeper_level1(void) {
    long blocked = 0;
    for (int i = 0; i < n; i++) {
        long t0 = now_ns();
        flightrec_sleep_on_pipe();
        blocked += now_ns() - t0;
    }
    KEEP_FRAME();
    return blocked;
}

int main(int argc, char **argv) {
    if (argc > 1) n = atoi(argv[1]);
    if (argc > 2) ms = atoi(argv[2]);
    pause_ms(100);
    if (pipe(pipefd)) return 1;
    pthread_t t;
    pthread_create(&t, 0, flightrec_waker_thread, 0);
    long blocked = flightrec_sleeper_level1();
    pthread_join(t, 0);
    printf("blocked_ns %ld\n", blocked);
    pause_ms(100);
    return 0;
}
