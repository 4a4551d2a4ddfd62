package db

import (
	"errors"
	"fmt"
	"time"

	"github.com/lib/pq"
)

// Listener delivers PostgreSQL notifications (NOTIFY) of one channel on a
// connection of its own, reconnecting when it is lost.
type Listener struct {
	l    *pq.Listener
	done chan struct{}
}

// Listen calls fn with the channel and payload of every notification on
// channels, in order, from one goroutine. After a lost connection is
// re-established fn gets ("", "") once: notifications sent meanwhile are
// gone, and a caller should look again at whatever it waits for.
// PostgreSQL only.
func (d *DB) Listen(channels []string, fn func(channel, payload string), onErr func(error)) (*Listener, error) {
	if d.Engine != Postgres {
		return nil, errors.New("notifications need PostgreSQL")
	}
	l := pq.NewListener(d.dsn, 100*time.Millisecond, 10*time.Second, func(_ pq.ListenerEventType, err error) {
		if err != nil && onErr != nil {
			onErr(err)
		}
	})
	for _, c := range channels {
		if err := l.Listen(c); err != nil {
			return nil, errors.Join(fmt.Errorf("listen on %s: %w", c, Err(err)), l.Close())
		}
	}
	x := &Listener{l: l, done: make(chan struct{})}
	go func() {
		defer close(x.done)
		for n := range l.Notify {
			if n == nil {
				fn("", "")
				continue
			}
			fn(n.Channel, n.Extra)
		}
	}()
	return x, nil
}

// Close disconnects and waits until fn is no longer called.
func (x *Listener) Close() error {
	err := x.l.Close()
	<-x.done
	return err
}
