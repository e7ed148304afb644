// Ground truth for Go stacks: a goroutine sleeps at the bottom of a deep recursion (each level a
// 512-byte frame: the sleep is over 20 KiB down its goroutine's stack, which the runtime has grown
// and moved), while the main goroutine spins. Prints the time it measured blocked:
// `blocked_ns N`. Built plain and stripped (-ldflags=-s -w) by the e2e tests.
package main

import (
	"fmt"
	"runtime"
	"syscall"
	"time"
)

//go:noinline
func flightrecGoSleep(ms int) {
	ts := syscall.NsecToTimespec(int64(ms) * 1e6)
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

//go:noinline
func flightrecGoDeep(n, ms int) int {
	var pad [64]uint64
	pad[n%64] = uint64(n)
	if n == 0 {
		flightrecGoSleep(ms)
		return int(pad[0])
	}
	return flightrecGoDeep(n-1, ms) + int(pad[n%64])
}

//go:noinline
func flightrecGoSleeper(rounds, depth, ms int, done chan<- time.Duration) {
	// One thread, and the rounds begin once the recorder has seen the process run Go (it drains
	// every 100 ms): the events before that copy only 1 KiB of stack.
	runtime.LockOSThread()
	warmup := syscall.NsecToTimespec(250 * 1e6)
	syscall.Nanosleep(&warmup, nil)
	var blocked time.Duration
	for i := 0; i < rounds; i++ {
		t0 := time.Now()
		flightrecGoDeep(depth, ms)
		blocked += time.Since(t0)
	}
	done <- blocked
}

var sink uint64

//go:noinline
func flightrecGoSpin(d time.Duration) {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		for i := 0; i < 1000000; i++ {
			sink = sink*31 + uint64(i)
		}
	}
}

func main() {
	done := make(chan time.Duration)
	go func() { flightrecGoSleeper(6, 40, 50, done) }()
	flightrecGoSpin(600 * time.Millisecond)
	fmt.Printf("blocked_ns %d\n", (<-done).Nanoseconds())
}
