package jmsg

import "encoding/json"

// ExecuteRequestContent is the content of an execute_request.
type ExecuteRequestContent struct {
	Code            string            `json:"code"`
	Silent          bool              `json:"silent"`
	StoreHistory    bool              `json:"store_history"`
	UserExpressions map[string]string `json:"user_expressions"`
	AllowStdin      bool              `json:"allow_stdin"`
	StopOnError     bool              `json:"stop_on_error"`
}

// ExecuteReplyContent is the content of an execute_reply. Fields past
// status and execution_count depend on the status.
type ExecuteReplyContent struct {
	Status          string                     `json:"status"` // ok | error | aborted
	ExecutionCount  int                        `json:"execution_count"`
	UserExpressions map[string]json.RawMessage `json:"user_expressions,omitempty"`
	Ename           string                     `json:"ename,omitempty"`
	Evalue          string                     `json:"evalue,omitempty"`
	Traceback       []string                   `json:"traceback,omitempty"`
}

// StatusContent is the content of an iopub status message.
type StatusContent struct {
	ExecutionState string `json:"execution_state"` // starting | busy | idle
}

// StreamContent is the content of an iopub stream message.
type StreamContent struct {
	Name string `json:"name"` // stdout | stderr
	Text string `json:"text"`
}

// ErrorContent is the content of an iopub error message.
type ErrorContent struct {
	Ename     string   `json:"ename"`
	Evalue    string   `json:"evalue"`
	Traceback []string `json:"traceback"`
}

// DisplayContent is the content of display_data, update_display_data and
// execute_result (which adds execution_count).
type DisplayContent struct {
	Data           map[string]json.RawMessage `json:"data"`
	Metadata       map[string]json.RawMessage `json:"metadata"`
	Transient      map[string]json.RawMessage `json:"transient,omitempty"`
	ExecutionCount int                        `json:"execution_count,omitempty"`
}

// InputRequestContent is the content of a stdin input_request.
type InputRequestContent struct {
	Prompt   string `json:"prompt"`
	Password bool   `json:"password"`
}

// InputReplyContent is the content of a stdin input_reply.
type InputReplyContent struct {
	Value string `json:"value"`
}

// ShutdownContent is the content of shutdown_request and shutdown_reply.
type ShutdownContent struct {
	Restart bool   `json:"restart"`
	Status  string `json:"status,omitempty"`
}

// KernelInfoReplyContent is the part of kernel_info_reply the gateway reads.
type KernelInfoReplyContent struct {
	Status                string          `json:"status"`
	ProtocolVersion       string          `json:"protocol_version"`
	Implementation        string          `json:"implementation"`
	ImplementationVersion string          `json:"implementation_version"`
	LanguageInfo          json.RawMessage `json:"language_info"`
	Banner                string          `json:"banner"`
}
