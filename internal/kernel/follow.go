package kernel

import (
	"context"
	"errors"
	"sync"
)

// Follow calls fn, in order, for every journal event that belongs to ex
// (messages with ex as parent) and for lifecycle events, from the moment ex
// was sent until it is done and all its events are read. fn runs on the
// caller's goroutine and may call back into the kernel (to answer input,
// say). A reader too slow for the journal gets a *GapError.
func (k *Kernel) Follow(ctx context.Context, ex *Execution, fn func(Event) error) error {
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-ex.Done():
		case <-rctx.Done():
		}
		cancel()
	})
	defer wg.Wait()
	defer cancel()

	after := ex.After
	deliver := func(evs []Event) error {
		for _, e := range evs {
			after = e.Seq
			if e.Life == nil && e.Msg.ParentID() != ex.ID {
				continue
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		evs, err := k.journal.Read(rctx, after, 256)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, context.Canceled) || errors.Is(err, ErrJournalClosed) {
				break // ex is done: read what is left below
			}
			return err
		}
		if err := deliver(evs); err != nil {
			return err
		}
	}
	// Done is closed only after ex's last event was journaled, so reading up
	// to the current end finds all of them.
	for last := k.journal.Last(); after < last; {
		evs, err := k.journal.Read(ctx, after, 256)
		if err != nil {
			return err
		}
		if err := deliver(evs); err != nil {
			return err
		}
	}
	return nil
}
