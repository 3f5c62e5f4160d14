package jmsg

import (
	"encoding/json"
	"testing"
)

func TestHeader_MarshalJSON(t *testing.T) {
	tests := []struct {
		name string
		h    Header
		want string
	}{
		{"empty is {}", Header{}, `{}`},
		{"full", Header{MsgID: "a", Session: "s", Username: "u", Date: "d", MsgType: "t", Version: "5.3"},
			`{"msg_id":"a","session":"s","username":"u","date":"d","msg_type":"t","version":"5.3"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.h)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Fatalf("got %s, want %s", b, tt.want)
			}
			var back Header
			if err := json.Unmarshal(b, &back); err != nil || back != tt.h {
				t.Fatalf("round trip: %+v, %v", back, err)
			}
		})
	}
}

func TestNew(t *testing.T) {
	parent := NewHeader(ExecuteRequest, "sess", "user")
	m, err := New(Stream, "sess", "user", &parent, StreamContent{Name: "stdout", Text: "hi\n"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Type() != Stream || m.ParentID() != parent.MsgID || m.Header.MsgID == "" || m.Header.MsgID == parent.MsgID {
		t.Fatalf("header %+v parent %+v", m.Header, m.Parent)
	}
	if m.Header.Version != ProtocolVersion || m.Header.Date == "" {
		t.Fatalf("header %+v lacks version or date", m.Header)
	}
	var c StreamContent
	if err := m.Decode(&c); err != nil || c.Text != "hi\n" {
		t.Fatalf("content %+v, %v", c, err)
	}
	orphan, err := New(Status, "s", "u", nil, StatusContent{ExecutionState: "idle"})
	if err != nil || !orphan.Parent.IsZero() {
		t.Fatalf("a message without parent has parent %+v (%v)", orphan.Parent, err)
	}
	if _, err := New(Status, "s", "u", nil, func() {}); err == nil {
		t.Fatal("unmarshalable content accepted")
	}
}

func TestObjectOrEmpty(t *testing.T) {
	for in, want := range map[string]string{"": "{}", "null": "{}", `{"a":1}`: `{"a":1}`} {
		if got := string(ObjectOrEmpty(json.RawMessage(in))); got != want {
			t.Errorf("ObjectOrEmpty(%q) = %q, want %q", in, got, want)
		}
	}
}
