// Package wsproto is the Jupyter kernel WebSocket framing, both kinds that
// Jupyter Server speaks on /api/kernels/{id}/channels: the legacy one (a JSON
// object per text frame, with a "channel" field, or a binary frame when the
// message has buffers) and the v1.kernel.websocket.jupyter.org binary
// subprotocol (channel and the four JSON parts as separate byte ranges, so
// metadata and content pass through without being re-encoded). It does no
// I/O.
//
// Everything a client sends is untrusted: decoders check the frame's
// structure (counts, offsets, sizes) before they parse any JSON, and return
// an error that says what is wrong.
package wsproto

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// SubprotocolV1 is the WebSocket subprotocol of the v1 binary framing.
const SubprotocolV1 = "v1.kernel.websocket.jupyter.org"

// MaxBuffers bounds the binary buffers one client message may carry.
const MaxBuffers = 1024

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed kernel message")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// channelCheck names a frame's channel, or says why it is not acceptable
// from that side of the socket.
type channelCheck func(string) (jmsg.Channel, error)

// clientChannel checks the channel a client names. iopub and hb are the
// kernel's to send; a client may only write requests and input replies.
func clientChannel(ch string) (jmsg.Channel, error) {
	switch c := jmsg.Channel(ch); c {
	case jmsg.Shell, jmsg.Control, jmsg.Stdin:
		return c, nil
	case "":
		// Jupyter Server assumes shell ("No channel specified, assuming
		// shell"); older clients rely on it.
		return jmsg.Shell, nil
	default:
		return "", malformed("channel %q: a client sends on shell, control or stdin", ch)
	}
}

// serverChannel checks the channel of a frame a server sent: any channel
// that carries kernel messages.
func serverChannel(ch string) (jmsg.Channel, error) {
	switch c := jmsg.Channel(ch); c {
	case jmsg.Shell, jmsg.Control, jmsg.Stdin, jmsg.IOPub:
		return c, nil
	default:
		return "", malformed("channel %q: a server sends on shell, control, stdin or iopub", ch)
	}
}

// DecodeClientFrame decodes a frame a client sent, in the framing the
// connection negotiated: legacy JSON text, or binary (v1, or legacy with
// buffers).
func DecodeClientFrame(data []byte, binaryFrame, v1 bool) (jmsg.Channel, *jmsg.Message, error) {
	return decodeFrame(data, binaryFrame, v1, clientChannel)
}

// DecodeServerFrame decodes a frame a server sent (clients of kernelgate's
// API use it: tests, the benchmark), iopub included.
func DecodeServerFrame(data []byte, binaryFrame, v1 bool) (jmsg.Channel, *jmsg.Message, error) {
	return decodeFrame(data, binaryFrame, v1, serverChannel)
}

func decodeFrame(data []byte, binaryFrame, v1 bool, check channelCheck) (jmsg.Channel, *jmsg.Message, error) {
	switch {
	case !binaryFrame:
		return decodeLegacyJSON(data, nil, check)
	case v1:
		return decodeV1(data, check)
	default:
		return decodeLegacyBinary(data, check)
	}
}

// legacyMessage is the JSON object of the legacy framing. Metadata and
// content stay raw: they pass to the kernel byte for byte.
type legacyMessage struct {
	Channel  *string         `json:"channel"`
	Header   json.RawMessage `json:"header"`
	Parent   json.RawMessage `json:"parent_header"`
	Metadata json.RawMessage `json:"metadata"`
	Content  json.RawMessage `json:"content"`
}

// decodeLegacyBinary decodes a binary frame of the legacy framing: a
// big-endian uint32 count n, n uint32 offsets, then the JSON message at the
// first offset followed by its buffers.
func decodeLegacyBinary(data []byte, check channelCheck) (jmsg.Channel, *jmsg.Message, error) {
	if len(data) < 4 {
		return "", nil, malformed("binary frame of %d bytes: too short for its part count", len(data))
	}
	n := uint64(binary.BigEndian.Uint32(data))
	if n == 0 || n > MaxBuffers+1 {
		return "", nil, malformed("binary frame names %d parts; want 1 to %d", n, MaxBuffers+1)
	}
	head := 4 * (n + 1)
	if uint64(len(data)) < head {
		return "", nil, malformed("binary frame of %d bytes: too short for %d offsets", len(data), n)
	}
	offsets := make([]uint64, n+1)
	for i := range n {
		offsets[i] = uint64(binary.BigEndian.Uint32(data[4*(i+1):]))
	}
	offsets[n] = uint64(len(data))
	parts, err := slice(data, offsets, head)
	if err != nil {
		return "", nil, err
	}
	return decodeLegacyJSON(parts[0], parts[1:], check)
}

func decodeLegacyJSON(data []byte, buffers [][]byte, check channelCheck) (jmsg.Channel, *jmsg.Message, error) {
	var lm legacyMessage
	if err := json.Unmarshal(data, &lm); err != nil {
		return "", nil, malformed("not a JSON message object: %v", err)
	}
	ch := ""
	if lm.Channel != nil {
		ch = *lm.Channel
	}
	c, err := check(ch)
	if err != nil {
		return "", nil, err
	}
	m, err := assemble(lm.Header, lm.Parent, lm.Metadata, lm.Content, buffers)
	if err != nil {
		return "", nil, err
	}
	return c, m, nil
}

// slice cuts data at offsets (ascending, the first one at least head, the
// last one len(data)) into len(offsets)-1 parts.
func slice(data []byte, offsets []uint64, head uint64) ([][]byte, error) {
	if offsets[0] < head {
		return nil, malformed("first part at offset %d, inside the offset table (%d bytes)", offsets[0], head)
	}
	parts := make([][]byte, len(offsets)-1)
	for i := range parts {
		lo, hi := offsets[i], offsets[i+1]
		if lo > hi || hi > uint64(len(data)) {
			return nil, malformed("part %d spans bytes %d to %d of a %d-byte frame", i, lo, hi, len(data))
		}
		parts[i] = data[lo:hi]
	}
	return parts, nil
}

// decodeV1 decodes a frame of the v1 binary framing: a little-endian uint64
// count n, n uint64 offsets, then channel | header | parent_header |
// metadata | content | buffers..., the last offset being the frame's end.
func decodeV1(data []byte, check channelCheck) (jmsg.Channel, *jmsg.Message, error) {
	if len(data) < 8 {
		return "", nil, malformed("v1 frame of %d bytes: too short for its offset count", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	// channel + 4 JSON parts + buffers, plus the closing offset.
	if n < 6 || n > 6+MaxBuffers {
		return "", nil, malformed("v1 frame names %d offsets; want 6 to %d", n, 6+MaxBuffers)
	}
	head := 8 * (n + 1)
	if uint64(len(data)) < head {
		return "", nil, malformed("v1 frame of %d bytes: too short for %d offsets", len(data), n)
	}
	offsets := make([]uint64, n)
	for i := range n {
		offsets[i] = binary.LittleEndian.Uint64(data[8*(i+1):])
	}
	if offsets[n-1] != uint64(len(data)) {
		return "", nil, malformed("v1 frame's last offset is %d, but the frame has %d bytes", offsets[n-1], len(data))
	}
	parts, err := slice(data, offsets, head)
	if err != nil {
		return "", nil, err
	}
	c, err := check(string(parts[0]))
	if err != nil {
		return "", nil, err
	}
	m, err := assemble(parts[1], parts[2], parts[3], parts[4], parts[5:])
	if err != nil {
		return "", nil, err
	}
	return c, m, nil
}

// assemble checks and builds a message from its parts. The header must
// name msg_id and msg_type (replies are routed by them); parent, metadata
// and content must be JSON objects (missing ones are {}).
func assemble(header, parent, metadata, content []byte, buffers [][]byte) (*jmsg.Message, error) {
	m := &jmsg.Message{}
	if err := parseHeader("header", header, &m.Header); err != nil {
		return nil, err
	}
	if m.Header.MsgID == "" || m.Header.MsgType == "" {
		return nil, malformed("header must have msg_id and msg_type")
	}
	if p := bytes.TrimSpace(parent); len(p) > 0 && string(p) != "null" {
		if err := parseHeader("parent_header", parent, &m.Parent); err != nil {
			return nil, err
		}
	}
	var err error
	if m.Metadata, err = object("metadata", metadata); err != nil {
		return nil, err
	}
	if m.Content, err = object("content", content); err != nil {
		return nil, err
	}
	if len(buffers) > 0 {
		m.Buffers = buffers
	}
	return m, nil
}

func parseHeader(part string, b []byte, h *jmsg.Header) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return malformed("%s is not a JSON object", part)
	}
	if err := json.Unmarshal(b, h); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return malformed("%s.%s is JSON %s; want a string", part, te.Field, te.Value)
		}
		return malformed("%s: %v", part, err)
	}
	return nil
}

// object returns b as a JSON object, {} when it is missing or null.
func object(part string, b []byte) (json.RawMessage, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || string(b) == "null" {
		return jmsg.EmptyObject, nil
	}
	if b[0] != '{' || !json.Valid(b) {
		return nil, malformed("%s is not a JSON object", part)
	}
	return json.RawMessage(b), nil
}

// EncodeV1 encodes a message the kernel sent for a v1 client. Header,
// parent, metadata and content are the kernel's own bytes when it has them.
func EncodeV1(ch jmsg.Channel, m *jmsg.Message) ([]byte, error) {
	header, parent := m.HeaderJSON(), m.ParentJSON()
	parts := make([][]byte, 0, 5+len(m.Buffers))
	parts = append(parts, []byte(ch), header, parent, jmsg.ObjectOrEmpty(m.Metadata), jmsg.ObjectOrEmpty(m.Content))
	parts = append(parts, m.Buffers...)
	n := len(parts) + 1
	size := 8 * (n + 1)
	for _, p := range parts {
		size += len(p)
	}
	out := make([]byte, 0, size)
	out = binary.LittleEndian.AppendUint64(out, uint64(n))
	off := uint64(8 * (n + 1))
	out = binary.LittleEndian.AppendUint64(out, off)
	for _, p := range parts {
		off += uint64(len(p))
		out = binary.LittleEndian.AppendUint64(out, off)
	}
	for _, p := range parts {
		out = append(out, p...)
	}
	return out, nil
}

// EncodeLegacy encodes a message the kernel sent for a legacy client: a
// JSON text frame, or (binary true) the binary frame when the message has
// buffers.
func EncodeLegacy(ch jmsg.Channel, m *jmsg.Message) (data []byte, binaryFrame bool, err error) {
	header, parent := m.HeaderJSON(), m.ParentJSON()
	// Built by hand: json.Marshal would re-validate and copy content, which
	// may be megabytes, only to write it back unchanged.
	metadata, content := jmsg.ObjectOrEmpty(m.Metadata), jmsg.ObjectOrEmpty(m.Content)
	var b bytes.Buffer
	b.Grow(len(header) + len(parent) + len(metadata) + len(content) + 160)
	b.WriteString(`{"header":`)
	b.Write(header)
	b.WriteString(`,"msg_id":`)
	writeString(&b, m.Header.MsgID)
	b.WriteString(`,"msg_type":`)
	writeString(&b, m.Header.MsgType)
	b.WriteString(`,"parent_header":`)
	b.Write(parent)
	b.WriteString(`,"metadata":`)
	b.Write(metadata)
	b.WriteString(`,"content":`)
	b.Write(content)
	b.WriteString(`,"buffers":[],"channel":`)
	writeString(&b, string(ch))
	b.WriteByte('}')
	if len(m.Buffers) == 0 {
		return b.Bytes(), false, nil
	}
	n := 1 + len(m.Buffers)
	size := 4*(n+1) + b.Len()
	for _, p := range m.Buffers {
		size += len(p)
	}
	out := make([]byte, 0, size)
	out = binary.BigEndian.AppendUint32(out, uint32(n))
	off := uint32(4 * (n + 1))
	out = binary.BigEndian.AppendUint32(out, off)
	off += uint32(b.Len())
	for _, p := range m.Buffers {
		out = binary.BigEndian.AppendUint32(out, off)
		off += uint32(len(p))
	}
	out = append(out, b.Bytes()...)
	for _, p := range m.Buffers {
		out = append(out, p...)
	}
	return out, true, nil
}

func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always marshals
	b.Write(enc)
}
