package main

// executeOverheadNote records the profile of one `1+1` execute inside
// ipykernel 6.17 (cProfile in the kernel over 300 executes driven by
// jupyter_client, /tmp scripts not kept), taken on the machine above on
// 2026-11-26. It is a finding, not a measurement of this run.
var executeOverheadNote = Note{
	Title: "Per-execute overhead inside ipykernel",
	Body: `
Profiled with cProfile inside a stock ipykernel 6.17 kernel over 300 ` + "`1+1`" + ` executes driven
by jupyter_client (2026-11-26, this machine). Per execute, the kernel spends about 5 ms of wall
time of which the profiler attributes (cumulative, per execute):

| where | per execute | what it is | cut? |
|---|---:|---|---|
| ` + "`time.sleep(self._execute_sleep)`" + ` in ` + "`execute_request`" + ` | 0.58 ms | a fixed 0.5 ms sleep after the output flush and before ` + "`execute_reply`" + `, "to help clients see output before the reply" | **yes**: the bootstrap sets ` + "`kernel._execute_sleep = 0`" + `. kernelgate ends an execution on its reply *and* its iopub ` + "`idle`" + `, which ipykernel publishes after flushing the output, so no output can be missed; ` + "`internal/kernel/lean_test.go`" + ` runs 150 executes and checks stdout, stderr and iopub order for each. Measured with jupyter_client: ` + "`1+1`" + ` p50 4.95 → 3.94 ms and 3.89 → 3.10 ms in two alternating runs (≈ 0.8–1.0 ms, more than the sleep: one scheduler hop fewer). |
| ` + "`OutStream.flush`" + ` ×6 (stdout and stderr, before the reply, before idle, and in the displayhook) | ≈ 0.97 ms | each flush schedules onto the IO thread and blocks on a ` + "`threading.Event`" + ` until it ran: a thread round trip even with nothing to flush | no: it is what guarantees output precedes ` + "`idle`" + `; skipping it would break ordering. |
| displayhook + formatters (` + "`compute_format_data`" + `) | 0.36 ms | IPython asks ~12 formatters (HTML, Markdown, SVG, PNG, JSON, LaTeX, ...) for the ` + "`2`" + ` | no safe cut: disabling formatters changes rich output for real values. |
| ` + "`jupyter_client.Session.send/serialize`" + ` (5 messages: busy, execute_input, execute_result, reply, idle) | 0.52 ms | JSON + HMAC + zmq send, with ` + "`extract_dates`" + `/` + "`dateutil`" + ` parsing the request's date (0.15 ms) | no: protocol messages every client expects; the date parse is inside jupyter_client. |
| IPython ` + "`run_cell`" + ` (transform, AST compile, exec, history) | 1.3 ms | input transformers, ` + "`compile`" + `, the history manager, post-execute hooks (matplotlib_inline's ` + "`flush_figures`" + `) | no: user-visible semantics (magics, history, figures). |
| epoll wait between steps | ≈ 1 ms | the tornado/asyncio loop waking for the next queued step | no. |

So the rest of the ≈ 3–4 ms floor is IPython and ipykernel doing what they are for; the gateway
itself adds nothing measurable on top (see the round trips above, where the engine is at or below
the direct Python client).
`,
}

// analysisNotes is the reading of the last full run's numbers (the one in
// docs/benchmarks.md), written by hand after it: numbers move from run to
// run, the reasons do not. Rewrite it when the numbers change.
var analysisNotes = []Note{{
	Title: "What the numbers say (run of 2026-11-26, 14:45 UTC)",
	Body: `
The machine is shared: another build and test run was working on it at times (1-minute load 3.2 at the
start, 7.9 at the end of this run), so p99s are noisy; the per-round p50s show how much. Two changes since
the previous run moved the numbers: the ` + "`/ws`" + ` variables summary is now evaluated with the cell (a user
expression of its execute request) instead of by a second request, and sandboxed kernels now get
` + "`OPENBLAS_NUM_THREADS`" + ` and friends set to their CPU quota (OpenBLAS's spinning idle workers ate the one-core
quota: plots took ≈ 98 ms in the previous run).

**Met.**
- *Gateway overhead:* ` + "`1+1`" + ` p50 2.52 ms over the channels API and 3.08 ms over ` + "`/ws`" + `, against the floor's
  3.28 ms: under the floor, not over it, because kernelgate's kernels skip ipykernel's 0.5 ms ` + "`_execute_sleep`" + `
  (see the engine section) and the Go path through the gateway costs less than a Python client's own decoding.
  ` + "`/ws`" + ` still does more per cell (the variables summary, the AdeloopFlow result) and shows it: 0.56 ms over channels.
- *Stream latency:* about 2 ms without flush and under 1 ms with it, on both APIs. The floor and Jupyter Server
  wait for stock ipykernel's 200 ms flush timer (p50 ≈ 100 ms); with ` + "`flush=True`" + ` all are within 0.25 ms of
  each other at p50.
- *Warm pool:* a ready kernel in 4.9 ms p50 over REST + channels and 1.0 ms over ` + "`/ws`" + ` (target 50 ms); cold,
  sandboxed, 342 ms, faster than Jupyter Server's unconfined 419 ms and the floor's 643 ms.
- *Concurrency:* 440 executions/s (channels) and 409/s (` + "`/ws`" + `) for 20 clients against the floor's 372/s (one
  Python client process polling 20 kernels) and Jupyter Server's 289/s. The machine is CPU-bound (2 cores, about
  4-6 ms of kernel CPU per ` + "`1+1`" + `), so this is what the kernels can do; kernelgate's own process used 28-30 % of a
  core for it (Jupyter Server 45 %).
- *10 MB flood:* every byte arrives on both kernelgate APIs (Jupyter Server drops it, below), in 128 ms over
  channels and 202 ms over ` + "`/ws`" + ` against the floor's 71 ms; the gateway's peak RSS during the cell was 224-264 MB,
  bounded by the journals kept for resume (a kernel's at most 64 MiB, a ` + "`/ws`" + ` session's 32 MiB). ` + "`/ws`" + ` sends
  14.2 MB for 10 MB of text: its final messages repeat the last 1 MiB of stdout in the fields the old backend had.
- *DataFrame:* 12.7 KB (channels) and 32 KB (` + "`/ws`" + `, which adds a 100-row ` + "`table_result`" + ` and the variables
  preview) per 10,000-row result: row-capped, not the whole frame; 7.3 and 9.9 ms against the floor's 6.4 ms.
- *Scale:* 100 sandboxed kernels and 1,000 idle channels WebSockets: the gateway at 81 MB RSS (102 MB with 1,000
  idle ` + "`/ws`" + ` sockets more; Jupyter Server 161 MB for the same) and 1.4 % of a core while idle. Each kernel costs
  73.6 MB RSS / 54.1 MB PSS with its sandbox helper and bwrap processes (3 processes), against 68.2 / 51.8 MB for
  a bare ipykernel.

**Missed, and why.**
- *Plot:* 51.0 ms (` + "`/ws`" + `) and 51.7 ms (channels) p50 against a 50 ms target: missed by 1-2 ms. The floor drew
  the same plot in 47.8 ms and Jupyter Server in 51.2 ms, so the target is about what matplotlib's Agg render
  and PNG encoding take on this machine; kernelgate adds 3-4 ms (1.07×), the same as Jupyter Server. What is
  left is the sandbox's CPU quota and the per-round noise (round p50s move by several ms).

**Jupyter Server, for context.**
- Every ` + "`1+1`" + ` takes about 44 ms (p50 ≈ p99, in both framings). Tornado leaves Nagle's algorithm on for
  WebSockets (` + "`set_nodelay`" + ` is opt-in and Jupyter Server 1.23 never calls it), so the second of the five small
  messages an execute produces waits for the client's delayed ACK (about 40 ms on Linux). A single message does
  not wait, which is why its ` + "`flush=True`" + ` stream p50 is fine. Browsers delay ACKs too.
- Its 10 MB flood delivered 321 bytes: the shipped iopub limit of 1 MB/s per connection dropped the whole output
  and sent a warning instead (that is also why its flood "time" is short).
- In this run it held 100 kernels and 1,000 idle WebSockets (161 MB); in the previous run it answered HTTP 500 at
  socket 381, under a heavier machine load.
`,
}}
