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
	Title: "What the numbers say (run of 2026-11-26)",
	Body: `
The machine is shared: another build and test run was working on it (1-minute load up to 23 in an
earlier attempt, 0.5 to 5.4 during this one), so p99s are noisy; the per-round p50s show how much.

**Met.**
- *Gateway overhead, channels API:* ` + "`1+1`" + ` p50 2.54 ms against the floor's 3.37 ms (0.75×): under the floor,
  not over it, because kernelgate's kernels skip ipykernel's 0.5 ms ` + "`_execute_sleep`" + ` (see the engine section)
  and the Go path through the gateway costs less than a Python client's own decoding.
- *Stream latency:* about 2 ms without flush and under 1 ms with it, on both APIs. The floor and Jupyter Server
  wait for stock ipykernel's 200 ms flush timer (p50 ≈ 100 ms); with ` + "`flush=True`" + ` all are within 0.3 ms of
  each other at p50.
- *Warm pool:* a ready kernel in 4.8 ms p50 over REST + channels and 1.6 ms over ` + "`/ws`" + ` (target 50 ms); cold,
  sandboxed, 343 ms, faster than Jupyter Server's unconfined 394 ms and the floor's 669 ms.
- *Concurrency, channels:* 449 executions/s for 20 clients against the floor's 375/s (one Python client process
  polling 20 kernels) and Jupyter Server's 304/s. The machine is CPU-bound (2 cores, about 4-6 ms of kernel CPU per
  ` + "`1+1`" + `), so this is what the kernels can do; kernelgate's own process used 28 % of a core for it (Jupyter Server 44 %).
- *10 MB flood:* every byte arrives on both kernelgate APIs; the gateway's RSS stayed near 240 MB
  (bounded: the kernel journal keeps at most 64 MiB per kernel, a ` + "`/ws`" + ` session 32 MiB, for resume).
- *DataFrame:* 12.7 KB (channels) and 32 KB (` + "`/ws`" + `, which adds a 100-row ` + "`table_result`" + ` and the variables
  preview) per 10,000-row result: row-capped, not the whole frame.
- *Scale:* 100 sandboxed kernels and 1,000 idle channels WebSockets: the gateway at 79.5 MB RSS (105 MB with 1,000
  idle ` + "`/ws`" + ` sockets more) and 1.7 % of a core while idle. Each kernel costs 73.6 MB RSS / 54.1 MB PSS with its
  sandbox helper and bwrap processes (3 processes), against 68.3 / 51.8 MB for a bare ipykernel.

**Missed, and why.**
- *` + "`1+1`" + ` over ` + "`/ws`" + `:* 4.37 ms p50, limit 3.87 ms (floor + 0.5 ms): missed by 0.5 ms. An AdeloopFlow cell
  is more than an execute: after the reply, kernelgate asks the kernel for the variables summary that
  ` + "`execution_result`" + ` must carry (a second, silent request), and the cell ends only then. The same cost explains
  *20 clients over ` + "`/ws`" + `:* 300 executions/s against the floor's 375/s (missed by 75/s): on 2 cores the kernels
  are the bottleneck, and each ` + "`/ws`" + ` cell makes its kernel do two requests.
- *Plot:* about 98 ms p50 on both kernelgate APIs against 50 ms for the floor and 51.5 ms for Jupyter Server:
  missed by 48 ms, and about 2× the floor, so the cost is in kernelgate's kernels, not the wire (a PNG of about
  20 KB crosses the gateway in well under a millisecond, as the stream and flood numbers show). Not yet
  explained. Suspects: the sandbox's 1-core CFS quota (matplotlib's render plus ipykernel's IO thread can
  exceed one core briefly and get throttled for the rest of a 100 ms period) and the fresh per-kernel HOME
  (matplotlib caches). To separate them: ` + "`KERNELGATE_SANDBOX=none go run ./cmd/kgbench -workloads plot`" + ` and
  ` + "`KERNELGATE_KERNEL_CPUS=0 go run ./cmd/kgbench -workloads plot`" + ` (the server inherits the environment).

**Jupyter Server, for context.**
- Every ` + "`1+1`" + ` takes about 44 ms (p50 ≈ p99, in both framings). Tornado leaves Nagle's algorithm on for
  WebSockets (` + "`set_nodelay`" + ` is opt-in and Jupyter Server 1.23 never calls it), so the second of the five small
  messages an execute produces waits for the client's delayed ACK (about 40 ms on Linux). A single message does
  not wait, which is why its ` + "`flush=True`" + ` stream p50 is fine. Browsers delay ACKs too.
- Its 10 MB flood delivered 321 bytes: the shipped iopub limit of 1 MB/s per connection dropped the whole output
  and sent a warning instead (that is also why its flood "time" is short).
- It did not hold 1,000 idle WebSockets on 100 kernels: socket 381 got HTTP 500. Each connection opens its own
  ZMQ sockets to the kernel, and about 380 connections is where libzmq's default limit of 1,023 sockets per context
  would be reached; its log was not kept, so this cause is likely, not proven. Its row has no numbers.
`,
}}
