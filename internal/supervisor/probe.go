package supervisor

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
)

// MaxProbeOutput bounds the output Probe returns; when a probe writes more,
// only the last MaxProbeOutput bytes are kept (the end of a traceback is the
// useful part).
const MaxProbeOutput = 1 << 20

// Probe runs argv to completion and returns its combined stdout and stderr,
// in order. It is meant for short preflight checks such as
// `python3 -c 'import ipykernel'`.
//
// env is the complete environment of the command; nil means this process's
// environment, as with exec.Cmd.Env. The time limit comes from ctx: when ctx
// ends first, the command and its whole process group are SIGKILLed and the
// error wraps ctx.Err(). Without a deadline on ctx a hung probe hangs Probe.
//
// A command that runs but fails yields an error wrapping *ExitError; a
// command that cannot be started yields the os/exec error (for example
// wrapping exec.ErrNotFound). Anything the probe forked is killed with its
// group when it exits.
func Probe(ctx context.Context, argv []string, env []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("supervisor: probe: empty command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = env

	// One writer for both streams: Start then hands the child a single pipe,
	// preserving the interleaving, as exec's CombinedOutput does.
	out := newTailBuffer(MaxProbeOutput)
	p, err := Start(ctx, cmd, Options{
		Stdout:          out,
		Stderr:          out,
		KillGroupOnExit: true,
	})
	if err != nil {
		return nil, fmt.Errorf("supervisor: probe: %w", err)
	}

	select {
	case <-p.Done():
	case <-ctx.Done():
		// ctx is already done, so Stop goes straight to SIGKILL.
		stopErr := p.Stop(ctx, nil)
		err := fmt.Errorf("supervisor: probe %s: %w", argv[0], ctx.Err())
		if stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return out.Bytes(), err
	}

	st, _ := p.Exit()
	if !st.Success() {
		return out.Bytes(), fmt.Errorf("supervisor: probe %s: %w", argv[0], &ExitError{Status: st})
	}
	return out.Bytes(), nil
}
