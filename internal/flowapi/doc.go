// Package flowapi speaks the wire format of the AdeloopFlow notebook backend
// (see ../shared/reference/adeloop-protocol.md in the project workspace), so
// that the existing AdeloopFlow frontend can run its cells on kernelgate.
//
// It is pure: no I/O. A Cell folds the Jupyter messages of one execution
// into AdeloopFlow server messages (stream_output, display_output,
// input_request, and the final stream_output / execution_result /
// execution_error), and into the HTTP ExecResponse body. Plotly figures,
// which kernels send as data, become the self-contained HTML the frontend
// renders (PlotlyHTML). The session that owns the socket decides when to
// send, journals and numbers the messages, and supplies the final state
// (variables and DataFrames) that the bootstrap's flow_state computes in the
// kernel.
package flowapi
