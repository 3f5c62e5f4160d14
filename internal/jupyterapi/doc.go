// Package jupyterapi serves the Jupyter Server kernel API, so that every
// Jupyter client can use kernelgate's kernels: JupyterLab and its
// @jupyterlab/services library, VS Code, jupyter_client-based tools, and
// Jupyter Server itself started with --gateway-url.
//
// REST (rest.go): /api, /api/status, /api/kernelspecs, /kernelspecs/{name}/{file},
// /api/kernels (list, start, get, shut down, interrupt, restart) and
// /api/sessions, with Jupyter Server's status codes and model formats.
//
// WebSocket (channels.go, hub.go): /api/kernels/{id}/channels in both of
// Jupyter's framings (internal/wsproto), chosen by subprotocol negotiation.
// A client's messages go to the kernel as they are (kernel.Send); what the
// kernel sends is read from the kernel's journal, the same one the
// AdeloopFlow API follows, so one kernel serves both APIs. iopub goes to
// every connection; replies and input requests go to the connection whose
// session_id sent the request, as the ZMQ identity routes them in Jupyter
// Server. A connection's position in the journal is kept when it closes, so
// a client that reconnects with the same session_id gets what it missed.
//
// Every kernel belongs to the user who started it; another user gets 404
// for it, everywhere.
package jupyterapi
