/* Ground truth for a program entered at code without unwind information, as static musl binaries
 * are (musl's _start has no CFI; glibc's marks its return address undefined): its own _start
 * calls flightrec_start_c, which runs main, which sleeps 5 x 30 ms in flightrec_entry_sleep and
 * prints how long. Built with -nostartfiles against glibc, dynamically linked (the loader
 * initializes libc before jumping to the entry point). It first idles 100 ms, so the recorder
 * reads its mappings while it lives. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__)
__asm__(".text\n"
        ".globl _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call flightrec_start_c\n"
        "  hlt\n");
#endif

static long now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000000000L + t.tv_nsec;
}

__attribute__((noinline)) long flightrec_entry_sleep(void) {
    struct timespec ts = {0, 30000000};
    long t0 = now_ns();
    for (int i = 0; i < 5; i++) nanosleep(&ts, 0);
    __asm__ volatile("" ::: "memory");
    return now_ns() - t0;
}

__attribute__((noinline)) int main(void) {
    struct timespec ts = {0, 100000000};
    nanosleep(&ts, 0);
    printf("blocked_ns %ld\n", flightrec_entry_sleep());
    fflush(stdout);
    return 0;
}

__attribute__((noreturn, used)) void flightrec_start_c(long *sp) {
    (void)sp;
    exit(main());
}
