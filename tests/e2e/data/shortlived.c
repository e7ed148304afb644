/* A process that lives ~200 ms: burns 100 ms of CPU in one uniquely named function, then sleeps
 * 4 x 25 ms in another. Built by the test with frame pointers, then deleted before analysis. */
#include <time.h>
#include <unistd.h>

static long cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

__attribute__((noinline)) unsigned long flightrec_c_burn_here(void) {
    volatile unsigned long x = 0;
    long end = cpu_ns() + 100000000L;
    while (cpu_ns() < end)
        for (int i = 0; i < 10000; i++) x += i;
    return x;
}

/* The syscall is issued here, not through libc: glibc has no frame pointers, and a frame-pointer walk
 * that starts inside it skips the frame that called it. */
__attribute__((noinline)) void flightrec_c_sleep_here(void) {
    struct timespec ts = {0, 25000000};
    for (int i = 0; i < 4; i++) {
#if defined(__x86_64__)
        long ret;
        __asm__ volatile("syscall" : "=a"(ret) : "0"(35L), "D"(&ts), "S"(0L) : "rcx", "r11", "memory");
#else
        nanosleep(&ts, 0);
#endif
    }
}

int main(void) {
    flightrec_c_burn_here();
    flightrec_c_sleep_here();
    return 0;
}
