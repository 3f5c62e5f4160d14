// Package jmsg is the Jupyter messaging protocol (5.3) message model: headers,
// messages, channels and the few typed contents the gateway inspects. It does
// no I/O; byte-level framings live in zmqwire (ZMQ) and later wsproto.
//
// Content is kept as raw JSON so that what a kernel says passes through the
// gateway byte for byte; only the messages the gateway acts on are decoded
// into the typed structs below.
package jmsg

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/google/uuid"
)

// ProtocolVersion is the messaging protocol version the gateway speaks.
const ProtocolVersion = "5.3"

// Channel names one of the kernel's sockets.
type Channel string

// The kernel channels.
const (
	Shell   Channel = "shell"
	IOPub   Channel = "iopub"
	Stdin   Channel = "stdin"
	Control Channel = "control"
	HB      Channel = "hb"
)

// Message types the gateway sends or inspects.
const (
	KernelInfoRequest = "kernel_info_request"
	KernelInfoReply   = "kernel_info_reply"
	ExecuteRequest    = "execute_request"
	ExecuteReply      = "execute_reply"
	ExecuteInput      = "execute_input"
	ExecuteResult     = "execute_result"
	DisplayData       = "display_data"
	UpdateDisplayData = "update_display_data"
	Stream            = "stream"
	Error             = "error"
	Status            = "status"
	ClearOutput       = "clear_output"
	InputRequest      = "input_request"
	InputReply        = "input_reply"
	InterruptRequest  = "interrupt_request"
	InterruptReply    = "interrupt_reply"
	ShutdownRequest   = "shutdown_request"
	ShutdownReply     = "shutdown_reply"
	CompleteRequest   = "complete_request"
	InspectRequest    = "inspect_request"
	IsCompleteRequest = "is_complete_request"
	HistoryRequest    = "history_request"
	CommInfoRequest   = "comm_info_request"
	CommOpen          = "comm_open"
	CommMsg           = "comm_msg"
	CommClose         = "comm_close"
)

// Header is a message header (and, when a reply or output refers to a
// request, that request's header as the parent).
type Header struct {
	MsgID    string `json:"msg_id"`
	Session  string `json:"session"`
	Username string `json:"username"`
	Date     string `json:"date"`
	MsgType  string `json:"msg_type"`
	Version  string `json:"version"`
}

// IsZero reports whether h is the empty header ({} on the wire), as a
// message with no parent carries.
func (h Header) IsZero() bool { return h == Header{} }

// MarshalJSON writes the empty header as {} (the protocol's "no parent").
func (h Header) MarshalJSON() ([]byte, error) {
	if h.IsZero() {
		return []byte("{}"), nil
	}
	type plain Header
	return json.Marshal(plain(h))
}

// Message is one Jupyter message. Identities are the ZMQ routing prefix
// (empty for messages a DEALER receives from a kernel, set by ROUTERs).
type Message struct {
	Identities [][]byte
	Header     Header
	Parent     Header
	Metadata   json.RawMessage // a JSON object; nil encodes as {}
	Content    json.RawMessage // a JSON object; nil encodes as {}
	Buffers    [][]byte

	// RawHeader and RawParent are the header and parent frames as a kernel
	// sent them (zmqwire.Decode sets them). Encoders toward clients forward
	// them byte for byte: no re-encoding, and header fields this model does
	// not name (a newer protocol's) survive. Code that changes Header or
	// Parent must clear them.
	RawHeader, RawParent json.RawMessage
}

// HeaderJSON is the header as JSON: the kernel's own bytes when the message
// came from one, else the encoding of Header.
func (m *Message) HeaderJSON() []byte {
	if len(m.RawHeader) > 0 {
		return m.RawHeader
	}
	b, _ := m.Header.MarshalJSON() // strings only: cannot fail
	return b
}

// ParentJSON is the parent header as JSON, like HeaderJSON.
func (m *Message) ParentJSON() []byte {
	if len(m.RawParent) > 0 {
		return m.RawParent
	}
	b, _ := m.Parent.MarshalJSON()
	return b
}

// NewHeader returns a fresh header with a new msg_id and the current time.
func NewHeader(msgType, session, username string) Header {
	return Header{
		MsgID:    uuid.NewString(),
		Session:  session,
		Username: username,
		Date:     time.Now().UTC().Format("2006-01-02T15:04:05.000000Z07:00"),
		MsgType:  msgType,
		Version:  ProtocolVersion,
	}
}

// New builds a message with a fresh header whose content is v marshalled
// to JSON. A nil parent means "no parent".
func New(msgType, session, username string, parent *Header, v any) (*Message, error) {
	content, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	m := &Message{Header: NewHeader(msgType, session, username), Content: content}
	if parent != nil {
		m.Parent = *parent
	}
	return m, nil
}

// Decode unmarshals the message content into v.
func (m *Message) Decode(v any) error { return json.Unmarshal(m.Content, v) }

// Type is the message type from the header.
func (m *Message) Type() string { return m.Header.MsgType }

// ParentID is the msg_id of the request this message answers or belongs to.
func (m *Message) ParentID() string { return m.Parent.MsgID }

// EmptyObject is the JSON encoding of an empty metadata or content dict.
var EmptyObject = json.RawMessage("{}")

// ObjectOrEmpty returns raw, or {} when raw is empty or JSON null.
func ObjectOrEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return EmptyObject
	}
	return raw
}
