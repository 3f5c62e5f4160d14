package proctest

import (
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
)

func TestBufferConcurrent(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				b.Write([]byte("x"))
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := len(b.String()); got != 800 {
		t.Fatalf("%d bytes written, want 800", got)
	}
}

func TestAliveAndMentioning(t *testing.T) {
	if !Alive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	if Alive(1 << 30) {
		t.Fatal("a pid that cannot exist is alive")
	}
	// This test binary's command line names itself.
	if got := Mentioning(os.Args[0]); !slices.Contains(got, os.Getpid()) {
		t.Fatalf("Mentioning(%q) = %v, want it to contain %d", os.Args[0], got, os.Getpid())
	}
	if got := Mentioning("no-process-has-this-" + strconv.Itoa(os.Getpid())); len(got) != 0 {
		t.Fatalf("Mentioning an unused string = %v", got)
	}
}
