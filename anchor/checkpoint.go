// Package anchor makes, sends and checks signed checkpoints: small Ed25519
// signed notes (golang.org/x/mod/sumdb/note) that state how far a
// recording's hash chain had got, sent off the host as they are made. A
// file whose tail was cut, or whose chain was rebuilt, no longer matches
// the checkpoints that left the host (docs/anchoring.md).
package anchor

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Checkpoint is what one signed checkpoint states.
type Checkpoint struct {
	Recording string        // random id of the recording, the same in every part
	Part      int           // file of a rotated recording; 0 when not rotated
	N         int64         // checkpoint number in the recording, from 1
	Batch     int64         // chain link seq of the file at the time
	Head      string        // that link's hash
	Messages  int64         // msgs rows committed to the file
	Events    int64         // recorder events so far (Options.CheckpointEvents); 0 without
	LastEvent string        // the last of them, one line; "" without
	TimeNs    int64         // wall clock when made
	Interval  time.Duration // the recorder's checkpoint interval
	Reason    string        // start, periodic, rotate or stop
	Key       string        // verifier key that signs this checkpoint
	Next      string        // verifier key that signs the next one
}

// Reasons a checkpoint is made.
const (
	ReasonStart    = "start"
	ReasonPeriodic = "periodic"
	ReasonRotate   = "rotate" // the last checkpoint of a part that was rotated out
	ReasonStop     = "stop"   // the last checkpoint of a recording, after its stop link
)

const header = "dnsrec checkpoint v1"

// Text is the note's text: one "key value" per line.
func (c *Checkpoint) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s\nrecording %s\npart %d\nn %d\nbatch %d\nhead %s\nmessages %d\nevents %d\n",
		header, c.Recording, c.Part, c.N, c.Batch, c.Head, c.Messages, c.Events)
	if c.LastEvent != "" {
		fmt.Fprintf(&b, "last-event %s\n", strings.ReplaceAll(c.LastEvent, "\n", " "))
	}
	fmt.Fprintf(&b, "time %d\ninterval %d\nreason %s\nkey %s\nnext %s\n",
		c.TimeNs, c.Interval.Nanoseconds(), c.Reason, c.Key, c.Next)
	return b.String()
}

// parseText reads what Text wrote.
func parseText(text string) (*Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) == 0 || lines[0] != header {
		return nil, errors.New("not a dnsrec checkpoint")
	}
	c := &Checkpoint{}
	var err error
	num := func(s string) int64 {
		n, e := strconv.ParseInt(s, 10, 64)
		if e != nil && err == nil {
			err = e
		}
		return n
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "recording":
			c.Recording = v
		case "part":
			c.Part = int(num(v))
		case "n":
			c.N = num(v)
		case "batch":
			c.Batch = num(v)
		case "head":
			c.Head = v
		case "messages":
			c.Messages = num(v)
		case "events":
			c.Events = num(v)
		case "last-event":
			c.LastEvent = v
		case "time":
			c.TimeNs = num(v)
		case "interval":
			c.Interval = time.Duration(num(v))
		case "reason":
			c.Reason = v
		case "key":
			c.Key = v
		case "next":
			c.Next = v
		}
	}
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	if c.Recording == "" || c.N < 1 || c.Key == "" || c.Next == "" {
		return nil, errors.New("checkpoint: a field is missing")
	}
	return c, nil
}

// Time is the checkpoint's time.
func (c *Checkpoint) Time() time.Time { return time.Unix(0, c.TimeNs).UTC() }

// Line is how a signed checkpoint travels and is stored: one line, with the
// main fields readable and the signed note in base64 (syslog receivers
// escape or split the note's newlines; base64 survives them all).
func Line(c *Checkpoint, signed []byte) string {
	return fmt.Sprintf("dnsrec-checkpoint recording=%s part=%d n=%d batch=%d head=%s messages=%d events=%d time=%s reason=%s note=%s",
		c.Recording, c.Part, c.N, c.Batch, c.Head, c.Messages, c.Events, c.Time().Format(time.RFC3339Nano), c.Reason,
		base64.StdEncoding.EncodeToString(signed))
}

// NewRecordingID is a random recording id.
func NewRecordingID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// KeyName is the signer name of a recording's keys.
func KeyName(recording string) string { return "dnsrec-" + recording }

// Keys signs a recording's checkpoints. With a fresh key for each
// checkpoint (NewKeys), a checkpoint names the key of the next one and its
// own private key is overwritten once it has signed: a key taken from the
// recorder's memory at time T signs only checkpoints after T. With a fixed
// key (FixedKeys) every checkpoint is signed by it and names it as next.
type Keys struct {
	name  string
	cur   *edKey
	next  *edKey
	fixed note.Signer
	fixV  string
}

type edKey struct {
	priv ed25519.PrivateKey
	vkey string
	hash uint32
}

func newEdKey(name string) (*edKey, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	vkey, err := note.NewEd25519VerifierKey(name, pub)
	if err != nil {
		return nil, err
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, err
	}
	return &edKey{priv: priv, vkey: vkey, hash: v.KeyHash()}, nil
}

// erase overwrites the private key in place: ed25519.Sign keeps no copy.
func (k *edKey) erase() { clear(k.priv) }

// edSigner is a note.Signer over an edKey that can be erased (the
// library's own signer keeps the key where it cannot be reached).
type edSigner struct {
	name string
	k    *edKey
}

func (s edSigner) Name() string    { return s.name }
func (s edSigner) KeyHash() uint32 { return s.k.hash }
func (s edSigner) Sign(msg []byte) ([]byte, error) {
	if len(s.k.priv) == 0 || isZero(s.k.priv) {
		return nil, errors.New("checkpoint key already used")
	}
	return ed25519.Sign(s.k.priv, msg), nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// NewKeys makes the first two keys of a recording.
func NewKeys(recording string) (*Keys, error) {
	k := &Keys{name: KeyName(recording)}
	var err error
	if k.cur, err = newEdKey(k.name); err != nil {
		return nil, err
	}
	if k.next, err = newEdKey(k.name); err != nil {
		return nil, err
	}
	return k, nil
}

// FixedKeys signs every checkpoint with skey, a note private key
// ("PRIVATE+KEY+name+hash+key", as note.GenerateKey writes it).
func FixedKeys(skey string) (*Keys, error) {
	s, err := note.NewSigner(strings.TrimSpace(skey))
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	vkey, err := VerifierKey(skey)
	if err != nil {
		return nil, err
	}
	return &Keys{name: s.Name(), fixed: s, fixV: vkey}, nil
}

// VerifierKey is the public verifier key of a note private key.
func VerifierKey(skey string) (string, error) {
	// PRIVATE+KEY+name+hash+base64(alg || seed)
	parts := strings.SplitN(strings.TrimSpace(skey), "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", errors.New("signing key: not a note private key (PRIVATE+KEY+name+hash+key)")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return "", errors.New("signing key: not an Ed25519 note key")
	}
	priv := ed25519.NewKeyFromSeed(raw[1:])
	defer clear(priv)
	clear(raw)
	return note.NewEd25519VerifierKey(parts[2], priv.Public().(ed25519.PublicKey))
}

// First is the verifier key of the next checkpoint to be signed: before
// the first one, the recording's first key.
func (k *Keys) First() string {
	if k.fixed != nil {
		return k.fixV
	}
	return k.cur.vkey
}

// Sign fills in c.Key and c.Next, signs c and, unless the key is fixed,
// erases the key that signed and moves on to the next.
func (k *Keys) Sign(c *Checkpoint) ([]byte, error) {
	if k.fixed != nil {
		c.Key, c.Next = k.fixV, k.fixV
		return note.Sign(&note.Note{Text: c.Text()}, k.fixed)
	}
	after, err := newEdKey(k.name)
	if err != nil {
		return nil, err
	}
	c.Key, c.Next = k.cur.vkey, k.next.vkey
	signed, err := note.Sign(&note.Note{Text: c.Text()}, edSigner{k.name, k.cur})
	k.cur.erase()
	k.cur, k.next = k.next, after
	return signed, err
}

// Close erases the keys not yet used.
func (k *Keys) Close() {
	if k.cur != nil {
		k.cur.erase()
	}
	if k.next != nil {
		k.next.erase()
	}
}

// GenerateKey makes a note key pair for --sign-key: the private key
// ("PRIVATE+KEY+name+hash+key") and its verifier key.
func GenerateKey(name string) (skey, vkey string, err error) {
	return note.GenerateKey(rand.Reader, name)
}
