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

// analysisNotes is the reading of the last full run's numbers, written by
// hand after it (numbers move from run to run; the reasons do not).
var analysisNotes = []Note{}
