package agent

import (
	"context"
	"errors"
	"testing"
	"time"
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
		for deadline := time.Now().Add(5 * time.Second); ; {
			q.mu.Lock()
			n := len(q.lanes["k"])
			q.mu.Unlock()
			if n == i+2 || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
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
