// Package zmqwire is the Jupyter ZMQ multipart codec: it turns a
// jmsg.Message into the frames a kernel expects and back, signing and
// verifying them with the connection's HMAC key. It does no I/O.
//
// The wire format (Jupyter messaging spec, "The Wire Protocol") is
//
//	[ident..., "<IDS|MSG>", hmac_hex, header, parent_header, metadata, content, buffer...]
//
// where the signature is the HMAC of the four JSON frames concatenated in
// that order, as lower-case hex. Identities are the ZMQ routing prefix; on
// iopub the PUB topic (e.g. "kernel.<id>.status") arrives the same way.
//
// A kernel runs user code, so everything it sends is untrusted input. Decode
// therefore works in an order that keeps the cost of a hostile message
// bounded: first the cheap structural limits (frame count, frame and message
// sizes, identities before the delimiter), then the HMAC over the JSON
// frames, and only for a message that verifies does it parse any JSON.
// Nothing that fails a check is partially returned.
package zmqwire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/kernelgate/kernelgate/internal/jmsg"
)

// Delimiter separates the routing identities from the message proper.
const Delimiter = "<IDS|MSG>"

var delimiter = []byte(Delimiter)

// Sentinel errors. Every error from Decode and Encode is a *FrameError that
// wraps exactly one of them, so callers can classify failures with
// errors.Is (for logging or metrics) and still get the precise part and
// reason from the message.
var (
	// ErrBadSignature: the signature is missing or does not match.
	ErrBadSignature = errors.New("zmqwire: bad signature")
	// ErrTooLarge: the message exceeds one of the Limits.
	ErrTooLarge = errors.New("zmqwire: message exceeds limits")
	// ErrMalformed: the frames are not a well-formed Jupyter message.
	ErrMalformed = errors.New("zmqwire: malformed message")
)

// FrameError reports which part of a message is wrong and why.
type FrameError struct {
	// Part is "frames" (their count), "frame" (one frame's size),
	// "message" (the total size, or a nil message given to Encode),
	// "identities", "delimiter", "signature", "header", "parent",
	// "metadata" or "content".
	Part string
	// Reason says what is wrong, e.g. "missing" or "not a JSON object".
	Reason string
	// Err is ErrBadSignature, ErrTooLarge or ErrMalformed.
	Err error
}

func (e *FrameError) Error() string { return "zmqwire: " + e.Part + ": " + e.Reason }

// Unwrap returns the sentinel the error belongs to.
func (e *FrameError) Unwrap() error { return e.Err }

func malformed(part, format string, args ...any) *FrameError {
	return &FrameError{Part: part, Reason: fmt.Sprintf(format, args...), Err: ErrMalformed}
}

func tooLarge(part, format string, args ...any) *FrameError {
	return &FrameError{Part: part, Reason: fmt.Sprintf(format, args...), Err: ErrTooLarge}
}

// Limits bounds what Decode accepts. A zero (or negative) field means the
// default from DefaultLimits.
type Limits struct {
	// MaxFrames bounds the number of frames, identities and buffers
	// included.
	MaxFrames int
	// MaxIdentities bounds the frames before the delimiter, and so how far
	// Decode scans for it.
	MaxIdentities int
	// MaxFrameBytes bounds the size of any one frame.
	MaxFrameBytes int
	// MaxMessageBytes bounds the sum of all frame sizes.
	MaxMessageBytes int
}

// Default limits. The byte limits are generous on purpose: a kernel that
// prints 64 MiB sends it as one stream message, and JSON escaping can
// inflate text several times (ensure_ascii turns one CJK character into
// six bytes), so 256 MiB lets such output through while still refusing
// absurd messages. The frame count allows thousands of binary buffers
// (ipywidgets, comms); ZMQ routing never needs more than a few identities.
const (
	DefaultMaxFrames       = 1 << 12   // 4096
	DefaultMaxIdentities   = 16        //
	DefaultMaxFrameBytes   = 256 << 20 // 256 MiB
	DefaultMaxMessageBytes = 256 << 20 // 256 MiB
)

// DefaultLimits returns the limits Decode applies to zero fields.
func DefaultLimits() Limits {
	return Limits{
		MaxFrames:       DefaultMaxFrames,
		MaxIdentities:   DefaultMaxIdentities,
		MaxFrameBytes:   DefaultMaxFrameBytes,
		MaxMessageBytes: DefaultMaxMessageBytes,
	}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxFrames <= 0 {
		l.MaxFrames = d.MaxFrames
	}
	if l.MaxIdentities <= 0 {
		l.MaxIdentities = d.MaxIdentities
	}
	if l.MaxFrameBytes <= 0 {
		l.MaxFrameBytes = d.MaxFrameBytes
	}
	if l.MaxMessageBytes <= 0 {
		l.MaxMessageBytes = d.MaxMessageBytes
	}
	return l
}

// The frames after the identities, in wire order.
const (
	iDelim = iota
	iSig
	iHeader
	iParent
	iMetadata
	iContent
	nFixed // frames every message has after its identities
)

var partNames = [nFixed]string{"delimiter", "signature", "header", "parent", "metadata", "content"}

// Encode returns the frames for m, signed with s (nil s: unsigned). Nil or
// JSON-null Metadata and Content encode as {}. The header must carry msg_id
// and msg_type, and Metadata and Content must be JSON objects.
//
// The returned frames alias m's Identities, Metadata, Content and Buffers;
// only the delimiter, signature and header frames are new.
func Encode(m *jmsg.Message, s *Signer) ([][]byte, error) {
	if m == nil {
		return nil, malformed("message", "nil")
	}
	if err := checkHeader(m.Header); err != nil {
		return nil, err
	}
	for i, id := range m.Identities {
		if bytes.Equal(id, delimiter) {
			return nil, malformed("identities", "identity %d is the delimiter", i)
		}
	}
	metadata := jmsg.ObjectOrEmpty(m.Metadata)
	if err := checkObject("metadata", metadata); err != nil {
		return nil, err
	}
	content := jmsg.ObjectOrEmpty(m.Content)
	if err := checkObject("content", content); err != nil {
		return nil, err
	}
	// MarshalJSON of jmsg.Header cannot fail (strings only) and writes {}
	// for the zero parent; calling it directly skips json.Marshal's
	// re-validation of a Marshaler's output.
	header, err := m.Header.MarshalJSON()
	if err != nil {
		return nil, malformed("header", "encode: %v", err)
	}
	parent, err := m.Parent.MarshalJSON()
	if err != nil {
		return nil, malformed("parent", "encode: %v", err)
	}

	frames := make([][]byte, 0, len(m.Identities)+nFixed+len(m.Buffers))
	frames = append(frames, m.Identities...)
	frames = append(frames,
		delimiter,
		s.Sign(header, parent, metadata, content),
		header, parent, metadata, content,
	)
	frames = append(frames, m.Buffers...)
	return frames, nil
}

// Decode parses and verifies one multipart message received from a kernel.
// s is the connection's Signer (nil: accept unsigned messages); lim bounds
// the work done on hostile input.
//
// The returned message aliases frames: Identities, Metadata, Content and
// Buffers refer to the input frames' bytes (the outer Identities and
// Buffers slices are new). The caller must not modify or reuse the frames'
// memory while the message is in use; receive a fresh [][]byte per message.
// Header and Parent are parsed copies; RawHeader and RawParent alias the
// frames too.
func Decode(frames [][]byte, s *Signer, lim Limits) (*jmsg.Message, error) {
	lim = lim.withDefaults()

	// Bounds first: the checks below cost O(len(frames)), which the first
	// check bounds, and never touch frame contents.
	if len(frames) > lim.MaxFrames {
		return nil, tooLarge("frames", "%d frames, limit %d", len(frames), lim.MaxFrames)
	}
	total := 0
	for i, f := range frames {
		if len(f) > lim.MaxFrameBytes {
			return nil, tooLarge("frame", "frame %d is %d bytes, limit %d", i, len(f), lim.MaxFrameBytes)
		}
		if len(f) > lim.MaxMessageBytes-total { // written so it cannot overflow
			return nil, tooLarge("message", "more than %d bytes", lim.MaxMessageBytes)
		}
		total += len(f)
	}

	nid := delimiterIndex(frames, lim.MaxIdentities)
	if nid < 0 {
		// Tell a long routing prefix from no delimiter at all; the scan is
		// cheap (length compares) and bounded by MaxFrames.
		if nid = delimiterIndex(frames, len(frames)); nid >= 0 {
			return nil, tooLarge("identities", "%d identities before the delimiter, limit %d", nid, lim.MaxIdentities)
		}
		return nil, malformed("delimiter", "missing")
	}
	rest := frames[nid:]
	if len(rest) < nFixed {
		return nil, malformed(partNames[len(rest)], "missing (%d of %d frames from the delimiter on)", len(rest), nFixed)
	}
	sig, header, parent := rest[iSig], rest[iHeader], rest[iParent]
	metadata, content := rest[iMetadata], rest[iContent]

	// Authenticate before parsing: unverified JSON never reaches the parser.
	if !s.Verify(sig, header, parent, metadata, content) {
		reason := "mismatch"
		if len(sig) == 0 {
			reason = "missing"
		}
		return nil, &FrameError{Part: "signature", Reason: reason, Err: ErrBadSignature}
	}

	m := &jmsg.Message{Metadata: metadata, Content: content, RawHeader: header, RawParent: parent}
	if err := parseHeader("header", header, &m.Header); err != nil {
		return nil, err
	}
	if err := checkHeader(m.Header); err != nil {
		return nil, err
	}
	if err := parseHeader("parent", parent, &m.Parent); err != nil {
		return nil, err
	}
	if err := checkObject("metadata", metadata); err != nil {
		return nil, err
	}
	if err := checkObject("content", content); err != nil {
		return nil, err
	}
	if nid > 0 {
		m.Identities = append([][]byte(nil), frames[:nid]...)
	}
	if bufs := rest[nFixed:]; len(bufs) > 0 {
		m.Buffers = append([][]byte(nil), bufs...)
	}
	return m, nil
}

// delimiterIndex returns the index of the first delimiter frame among the
// first maxIdentities+1 frames, or -1.
func delimiterIndex(frames [][]byte, maxIdentities int) int {
	for i, f := range frames {
		if i > maxIdentities {
			break
		}
		if bytes.Equal(f, delimiter) {
			return i
		}
	}
	return -1
}

// parseHeader parses a header or parent frame. Both must be JSON objects;
// an empty parent is {}.
func parseHeader(part string, b []byte, h *jmsg.Header) error {
	if firstNonSpace(b) != '{' {
		return malformed(part, "not a JSON object")
	}
	if err := json.Unmarshal(b, h); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return malformed(part, "%s: JSON %s, want a string", te.Field, te.Value)
		}
		return malformed(part, "invalid JSON: %v", err)
	}
	return nil
}

// checkHeader enforces the header fields every kernel sets and the gateway
// relies on to route replies and outputs.
func checkHeader(h jmsg.Header) error {
	if h.MsgID == "" {
		return malformed("header", "msg_id missing")
	}
	if h.MsgType == "" {
		return malformed("header", "msg_type missing")
	}
	return nil
}

// checkObject reports whether b is a single JSON object. Metadata and
// content stay raw (they pass through the gateway byte for byte), so this is
// a validity scan, not a parse.
func checkObject(part string, b []byte) error {
	if firstNonSpace(b) != '{' {
		return malformed(part, "not a JSON object")
	}
	if !json.Valid(b) {
		// Only on failure: parse again for a message with the offset.
		err := json.Unmarshal(b, new(json.RawMessage))
		return malformed(part, "invalid JSON: %v", err)
	}
	return nil
}

// firstNonSpace returns the first byte of b that is not JSON whitespace, or
// 0 if there is none.
func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}
