/* Ground truth for page faults: touches N fresh pages of private anonymous memory, one write
 * each, always under the same chain of named functions (main -> flightrec_fault_level1 ->
 * flightrec_fault_level2 -> flightrec_touch), paced (1 ms every 256 pages) so the recorder keeps
 * up, and prints how many pages it touched. Transparent huge pages are turned off for the region,
 * so each page is one fault. It first idles 100 ms, so the recorder reads its mappings while it
 * lives.
 *
 *   faults N */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>

#define KEEP_FRAME() __asm__ volatile("" ::: "memory")

static void pause_ms(int m) {
    struct timespec ts = {0, m * 1000000L};
    while (nanosleep(&ts, &ts)) {
    }
}

__attribute__((noinline)) void flightrec_touch(volatile char *page) {
    *page = 1;
    KEEP_FRAME();
}

__attribute__((noinline)) long flightrec_fault_level2(char *mem, long pages) {
    for (long i = 0; i < pages; i++) {
        flightrec_touch(mem + i * 4096);
        if (i % 256 == 255) pause_ms(1);
    }
    KEEP_FRAME();
    return pages;
}

__attribute__((noinline)) long flightrec_fault_level1(long pages) {
    char *mem = mmap(0, pages * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) abort();
    if (madvise(mem, pages * 4096, MADV_NOHUGEPAGE)) abort();
    long n = flightrec_fault_level2(mem, pages);
    KEEP_FRAME();
    return n;
}

int main(int argc, char **argv) {
    long pages = argc > 1 ? atol(argv[1]) : 1000;
    pause_ms(100);
    printf("touched %ld\n", flightrec_fault_level1(pages));
    pause_ms(100);
    return 0;
}
