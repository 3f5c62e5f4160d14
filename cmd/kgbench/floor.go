package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// floorJob runs bench/baseline.py in job mode: job goes to its stdin as
// one JSON line, its one-line JSON answer is decoded into out.
func floorJob(ctx context.Context, python, script string, job, out any) error {
	b, err := json.Marshal(job)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, python, script, "-job")
	cmd.Stdin = bytes.NewReader(append(b, '\n'))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// On Ctrl-C, SIGTERM lets the script's finally blocks stop its kernels.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s -job: %w; stderr: %s", python, script, err, tail(stderr.String(), 2000))
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		return fmt.Errorf("parse baseline output: %w; stdout: %s", err, tail(stdout.String(), 500))
	}
	return nil
}

// floorPeerOut is the baseline's answer to a "peer" job.
type floorPeerOut struct {
	Versions  map[string]string    `json:"versions"`
	StartMS   []float64            `json:"start_ms"`
	ExecuteMS []float64            `json:"execute_ms"`
	StreamMS  map[string][]float64 `json:"stream_ms"`
	PlotMS    []float64            `json:"plot_ms"`
	Flood     []struct {
		MS          float64 `json:"ms"`
		WireBytes   int     `json:"wire_bytes"`
		StreamBytes int     `json:"stream_bytes"`
	} `json:"flood"`
	DataFrame []struct {
		MS        float64 `json:"ms"`
		WireBytes int     `json:"wire_bytes"`
	} `json:"dataframe"`
}

type floorConcOut struct {
	LatencyMS []float64 `json:"latency_ms"`
	Count     int       `json:"count"`
	ElapsedS  float64   `json:"elapsed_s"`
}

// floorScale starts the baseline's "scale" job and returns once its
// kernels are ready; release tells it to stop them and waits for it.
func floorScale(ctx context.Context, python, script string, kernels int) (pid int, startS float64, release func() error, err error) {
	cmd := exec.CommandContext(ctx, python, script, "-job")
	in, err := cmd.StdinPipe()
	if err != nil {
		return 0, 0, nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 60 * time.Second
	if err := cmd.Start(); err != nil {
		return 0, 0, nil, err
	}
	release = func() error {
		in.Close() // EOF: the script stops its kernels and exits
		io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			return fmt.Errorf("baseline scale job: %w; stderr: %s", err, tail(stderr.String(), 2000))
		}
		return nil
	}
	fmt.Fprintf(in, `{"mode":"scale","kernels":%d,"parallel":4}`+"\n", kernels)
	line, rerr := bufio.NewReader(out).ReadBytes('\n')
	var ready struct {
		Ready  bool    `json:"ready"`
		StartS float64 `json:"start_s"`
	}
	if rerr != nil || json.Unmarshal(line, &ready) != nil || !ready.Ready {
		rel := release()
		return 0, 0, nil, fmt.Errorf("baseline scale job did not get ready (%v, %v): %s", rerr, rel, tail(stderr.String(), 2000))
	}
	return cmd.Process.Pid, ready.StartS, release, nil
}
