package agent

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/testctx"
)

func TestQueueFIFOAndCancel(t *testing.T) {
	var q queue
	ctx := context.Background()
	rel1, err := q.acquire(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// A waiter that gives up leaves the line without taking the key.
	cctx, cancel := context.WithCancelCause(ctx)
	gaveUp := make(chan error, 1)
	go func() { _, err := q.acquire(cctx, "k"); gaveUp <- err }()
	got := make(chan int, 3)
	for i := 1; i <= 3; i++ {
		ready := make(chan struct{})
		go func() {
			close(ready)
			rel, err := q.acquire(ctx, "k")
			if err != nil {
				t.Error(err)
				return
			}
			got <- i
			rel()
		}()
		<-ready
		// Let each waiter join the line before the next (order is the point).
		// (Polled until the test's own deadline: the queue has no event
		// for it, and a fixed limit fails on a busy machine.)
		for ctx := testctx.Context(t); ; {
			q.mu.Lock()
			n := len(q.lanes["k"])
			q.mu.Unlock()
			if n == i+2 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("waiter %d never joined the line", i)
			case <-time.After(time.Millisecond):
			}
		}
	}
	stop := errors.New("stop")
	cancel(stop)
	if err := <-gaveUp; !errors.Is(err, stop) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	rel1()
	for want := 1; want <= 3; want++ {
		if i := <-got; i != want {
			t.Fatalf("waiter %d got the key before %d", i, want)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.lanes) != 0 {
		t.Errorf("lanes left: %v", q.lanes)
	}
}
