package export

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/netip"
	"path/filepath"
	"strconv"
	"time"

	"github.com/miekg/dns"

	"github.com/dnsrec/dnsrec/internal/dnstext"
	"github.com/dnsrec/dnsrec/query"
)

// OCSFVersion is the OCSF schema version the ocsf export follows.
const OCSFVersion = "1.8.0"

// The OCSF class of every event: DNS Activity, in Network Activity.
const (
	ocsfCategoryUID = 4
	ocsfClassUID    = 4003
)

// ocsfEvent is one OCSF DNS Activity event (class 4003): one DNS
// transaction. Field names follow the schema (events/network/dns_activity.json
// and the objects it uses); EXPORTS.md documents how each is filled.
type ocsfEvent struct {
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	TypeUID      int    `json:"type_uid"`
	TypeName     string `json:"type_name"`
	SeverityID   int    `json:"severity_id"`
	Severity     string `json:"severity"`

	Time         int64  `json:"time"`
	TimeDt       string `json:"time_dt"`
	QueryTime    int64  `json:"query_time,omitempty"`
	QueryTimeDt  string `json:"query_time_dt,omitempty"`
	ResponseTime int64  `json:"response_time,omitempty"`
	RespTimeDt   string `json:"response_time_dt,omitempty"`
	Duration     *int64 `json:"duration,omitempty"`

	StatusDetail string `json:"status_detail"`

	Metadata       ocsfMetadata     `json:"metadata"`
	Device         ocsfDevice       `json:"device"`
	Actor          *ocsfActor       `json:"actor,omitempty"`
	SrcEndpoint    *ocsfEndpoint    `json:"src_endpoint,omitempty"`
	DstEndpoint    *ocsfEndpoint    `json:"dst_endpoint,omitempty"`
	ConnectionInfo ocsfConnection   `json:"connection_info"`
	Query          *ocsfQuery       `json:"query,omitempty"`
	Answers        []ocsfAnswer     `json:"answers,omitempty"`
	Rcode          string           `json:"rcode,omitempty"`
	RcodeID        *int             `json:"rcode_id,omitempty"`
	Unmapped       ocsfDnsrecFields `json:"unmapped"`
}

type ocsfMetadata struct {
	Version   string      `json:"version"`
	Product   ocsfProduct `json:"product"`
	Profiles  []string    `json:"profiles"`
	UID       string      `json:"uid"`
	LogName   string      `json:"log_name"`
	LogSource string      `json:"log_source"`
}

type ocsfProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version,omitempty"`
}

type ocsfDevice struct {
	Hostname string `json:"hostname"`
	TypeID   int    `json:"type_id"`
	Type     string `json:"type"`
}

type ocsfActor struct {
	Process *ocsfProcess `json:"process"`
}

type ocsfProcess struct {
	PID           int64           `json:"pid"`
	TID           int64           `json:"tid,omitempty"`
	Name          string          `json:"name,omitempty"`
	CmdLine       string          `json:"cmd_line,omitempty"`
	File          *ocsfFile       `json:"file,omitempty"`
	User          *ocsfUser       `json:"user,omitempty"`
	ParentProcess *ocsfProcess    `json:"parent_process,omitempty"`
	Ancestry      []ocsfProcEntry `json:"ancestry,omitempty"`
	Container     *ocsfContainer  `json:"container,omitempty"`
}

// ocsfContainer is OCSF's Container object: the id parsed from the
// process's cgroup path.
type ocsfContainer struct {
	UID string `json:"uid"`
}

type ocsfProcEntry struct {
	PID  int64  `json:"pid"`
	Name string `json:"name,omitempty"`
}

type ocsfFile struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
}

type ocsfUser struct {
	UID string `json:"uid"`
}

type ocsfEndpoint struct {
	IP   string `json:"ip"`
	Port uint16 `json:"port"`
}

type ocsfConnection struct {
	ProtocolName  string `json:"protocol_name"`
	ProtocolNum   int    `json:"protocol_num"`
	ProtocolVerID int    `json:"protocol_ver_id"`
	DirectionID   int    `json:"direction_id"`
	Direction     string `json:"direction"`
}

type ocsfQuery struct {
	Hostname  string `json:"hostname"`
	Type      string `json:"type"`
	Class     string `json:"class"`
	PacketUID int    `json:"packet_uid"`
	OpcodeID  int    `json:"opcode_id"`
	Opcode    string `json:"opcode"`
}

type ocsfAnswer struct {
	Rdata     string   `json:"rdata"`
	Type      string   `json:"type"`
	TTL       uint32   `json:"ttl"`
	Class     string   `json:"class,omitempty"`
	PacketUID int      `json:"packet_uid"`
	FlagIDs   []int    `json:"flag_ids,omitempty"`
	Flags     []string `json:"flags,omitempty"`
}

// ocsfDnsrecFields is what OCSF has no attribute for, under unmapped.dnsrec.
type ocsfDnsrecFields struct {
	Dnsrec struct {
		File          string       `json:"file"`
		QueryID       int64        `json:"query_id,omitempty"`
		ResponseID    int64        `json:"response_id,omitempty"`
		LatencyNs     int64        `json:"latency_ns,omitempty"`
		Note          string       `json:"note,omitempty"`
		ServerProcess *ocsfProcess `json:"server_process,omitempty"`
	} `json:"dnsrec"`
}

// ocsfWriter writes one OCSF event per line (JSON Lines).
type ocsfWriter struct {
	ctx      context.Context
	d        *query.DB
	bw       *bufio.Writer
	enc      *json.Encoder
	versions map[sessionKey]string
	msg      dns.Msg
	procs    map[*query.Process]*ocsfProcess // messages share their query.Process
}

type sessionKey struct {
	file    string
	session int64
}

func newOCSFWriter(ctx context.Context, w io.Writer, d *query.DB) *ocsfWriter {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &ocsfWriter{ctx: ctx, d: d, bw: bw, enc: enc, versions: map[sessionKey]string{}, procs: map[*query.Process]*ocsfProcess{}}
}

func (o *ocsfWriter) close() error { return o.bw.Flush() }

// recorderVersion is the dnsrec version that recorded m's session: the
// product that observed the event.
func (o *ocsfWriter) recorderVersion(m *query.Message) (string, error) {
	k := sessionKey{m.File, m.Session}
	if v, ok := o.versions[k]; ok {
		return v, nil
	}
	v, err := o.d.RecorderVersion(o.ctx, m.File, m.Session)
	if err != nil {
		return "", err
	}
	o.versions[k] = v
	return v, nil
}

func ocsfMillis(t time.Time) int64 { return t.UnixMilli() }

func (o *ocsfWriter) write(t *query.Transaction) error {
	q, r := t.Query, t.Response
	first := t.First()
	e := ocsfEvent{
		CategoryUID: ocsfCategoryUID, CategoryName: "Network Activity",
		ClassUID: ocsfClassUID, ClassName: "DNS Activity",
		SeverityID: 1, Severity: "Informational",
		Time: ocsfMillis(first.Time), TimeDt: first.Time.UTC().Format(time.RFC3339Nano),
		StatusDetail: t.Status(),
	}
	switch {
	case q != nil && r != nil:
		e.ActivityID, e.ActivityName = 6, "Traffic"
	case q != nil:
		e.ActivityID, e.ActivityName = 1, "Query"
	default:
		e.ActivityID, e.ActivityName = 2, "Response"
	}
	e.TypeUID = ocsfClassUID*100 + e.ActivityID
	e.TypeName = "DNS Activity: " + e.ActivityName
	if q != nil {
		e.QueryTime, e.QueryTimeDt = ocsfMillis(q.Time), q.Time.UTC().Format(time.RFC3339Nano)
	}
	if r != nil {
		e.ResponseTime, e.RespTimeDt = ocsfMillis(r.Time), r.Time.UTC().Format(time.RFC3339Nano)
	}
	if d := t.Latency(); d > 0 {
		ms := d.Milliseconds()
		e.Duration = &ms
		e.Unmapped.Dnsrec.LatencyNs = int64(d)
	}

	ver, err := o.recorderVersion(first)
	if err != nil {
		return err
	}
	e.Metadata = ocsfMetadata{
		Version:   OCSFVersion,
		Product:   ocsfProduct{Name: "dnsrec", VendorName: "dnsrec", Version: ver},
		Profiles:  []string{"host", "datetime"},
		UID:       t.UID(),
		LogName:   "dns",
		LogSource: first.File,
	}
	e.Device = ocsfDevice{Hostname: t.Host(), TypeID: 0, Type: "Unknown"}

	client, server := t.Client(), t.Server()
	if client != nil {
		e.Actor = &ocsfActor{Process: o.proc(client)}
	} else if server != nil {
		e.Actor = &ocsfActor{Process: o.proc(server)}
	}
	if client != nil && server != nil {
		e.Unmapped.Dnsrec.ServerProcess = o.proc(server)
	}
	e.SrcEndpoint = ocsfAddr(t.ClientAddr())
	e.DstEndpoint = ocsfAddr(t.ServerAddr())
	e.ConnectionInfo = ocsfConn(t)

	if qm := t.Question(); qm != nil {
		op := qm.Opcode()
		e.Query = &ocsfQuery{
			Hostname: qm.QName, Type: dnstext.TypeName(qm.QType), Class: className(qm.QClass),
			PacketUID: int(qm.DNSID), OpcodeID: ocsfOpcodeID(op), Opcode: ocsfOpcode(op),
		}
	}
	if r != nil {
		if r.Rcode >= 0 {
			id, name := ocsfRcode(r.Rcode)
			e.RcodeID, e.Rcode = &id, name
		}
		classes := o.answerClasses(r)
		flagIDs, flags := ocsfFlags(r)
		for i, rr := range r.Answers {
			a := ocsfAnswer{Rdata: dnstext.DisplayData(rr.Type, rr.Data), Type: dnstext.TypeName(rr.Type), TTL: rr.TTL,
				PacketUID: int(r.DNSID), FlagIDs: flagIDs, Flags: flags}
			if i < len(classes) {
				a.Class = classes[i]
			}
			e.Answers = append(e.Answers, a)
		}
	}
	e.Unmapped.Dnsrec.File = first.File
	if q != nil {
		e.Unmapped.Dnsrec.QueryID = q.ID
	}
	if r != nil {
		e.Unmapped.Dnsrec.ResponseID = r.ID
	}
	e.Unmapped.Dnsrec.Note = t.Note()
	return o.enc.Encode(&e)
}

// answerClasses reads the answer records' classes from the response's bytes,
// which is the only place the evidence keeps them. Nil when the bytes are cut
// or do not decode into as many answers as were stored.
func (o *ocsfWriter) answerClasses(r *query.Message) []string {
	if r.Cut || len(r.Raw) == 0 || len(r.Answers) == 0 {
		return nil
	}
	o.msg = dns.Msg{}
	if o.msg.Unpack(r.Raw) != nil || len(o.msg.Answer) != len(r.Answers) {
		return nil
	}
	out := make([]string, len(o.msg.Answer))
	for i, rr := range o.msg.Answer {
		if rr.Header().Rrtype != r.Answers[i].Type {
			return nil
		}
		out[i] = className(rr.Header().Class)
	}
	return out
}

func className(c uint16) string {
	if s, ok := dns.ClassToString[c]; ok {
		return s
	}
	return "CLASS" + strconv.Itoa(int(c))
}

// proc is ocsfProc, built once per process.
func (o *ocsfWriter) proc(p *query.Process) *ocsfProcess {
	op, ok := o.procs[p]
	if !ok {
		if len(o.procs) >= maxProcCache {
			clear(o.procs)
		}
		op = ocsfProc(p)
		o.procs[p] = op
	}
	return op
}

func ocsfProc(p *query.Process) *ocsfProcess {
	op := &ocsfProcess{PID: p.PID, Name: p.Comm, CmdLine: cmdLine(p)}
	if p.TID != 0 && p.TID != p.PID {
		op.TID = p.TID
	}
	if p.Exe != "" {
		op.File = &ocsfFile{Name: filepath.Base(p.Exe), Path: p.Exe, TypeID: 8, Type: "Executable File"}
	}
	if p.UID.Valid {
		op.User = &ocsfUser{UID: strconv.FormatInt(p.UID.V, 10)}
	}
	if p.Container != "" {
		op.Container = &ocsfContainer{UID: p.Container}
	}
	if len(p.Ancestry) > 0 {
		op.ParentProcess = &ocsfProcess{PID: p.Ancestry[0].PID, Name: p.Ancestry[0].Comm}
		op.Ancestry = make([]ocsfProcEntry, len(p.Ancestry))
		for i, a := range p.Ancestry {
			op.Ancestry[i] = ocsfProcEntry{PID: a.PID, Name: a.Comm}
		}
	}
	return op
}

func ocsfAddr(a netip.AddrPort) *ocsfEndpoint {
	if !a.IsValid() {
		return nil
	}
	return &ocsfEndpoint{IP: a.Addr().Unmap().String(), Port: a.Port()}
}

// ocsfConn is connection_info. The direction is from this host's point of
// view: Outbound when only the client end is local, Inbound when only the
// server end is, Local when both are.
func ocsfConn(t *query.Transaction) ocsfConnection {
	c := ocsfConnection{ProtocolName: t.Proto(), ProtocolNum: 17}
	if c.ProtocolName != "udp" {
		c.ProtocolNum = 6 // dot runs over TCP
	}
	if a := t.ClientAddr().Addr(); a.Unmap().Is4() {
		c.ProtocolVerID = 4
	} else if a.Is6() {
		c.ProtocolVerID = 6
	}
	// Ends observed on the host, even without an identified process.
	clientLocal := (t.Query != nil && t.Query.Sender != nil) || (t.Response != nil && t.Response.Receiver != nil)
	serverLocal := (t.Query != nil && t.Query.Receiver != nil) || (t.Response != nil && t.Response.Sender != nil)
	switch {
	case clientLocal && serverLocal:
		c.DirectionID, c.Direction = 4, "Local"
	case clientLocal:
		c.DirectionID, c.Direction = 2, "Outbound"
	case serverLocal:
		c.DirectionID, c.Direction = 1, "Inbound"
	default:
		c.DirectionID, c.Direction = 0, "Unknown"
	}
	return c
}

// ocsfRcode maps a response code to rcode_id and its caption (RFC 6895
// ranges for the unassigned and reserved codes).
func ocsfRcode(r int) (int, string) {
	if s, ok := ocsfRcodes[r]; ok {
		return r, s
	}
	switch {
	case r >= 12 && r <= 15, r >= 24 && r <= 3840, r >= 4096 && r <= 65534:
		return 24, "Unassigned"
	case r >= 3841 && r <= 4095, r == 65535:
		return 25, "Reserved"
	}
	return 99, "Other"
}

// ocsfRcodes are dns_activity's rcode_id captions.
var ocsfRcodes = map[int]string{
	0: "NoError", 1: "FormError", 2: "ServError", 3: "NXDomain", 4: "NotImp", 5: "Refused",
	6: "YXDomain", 7: "YXRRSet", 8: "NXRRSet", 9: "NotAuth", 10: "NotZone", 11: "DSOTYPENI",
	16: "BADSIG_VERS", 17: "BADKEY", 18: "BADTIME", 19: "BADMODE", 20: "BADNAME", 21: "BADALG",
	22: "BADTRUNC", 23: "BADCOOKIE",
}

func ocsfOpcodeID(op int) int {
	switch op {
	case 0, 1, 2, 3, 4, 5, 6:
		return op
	}
	return 99
}

func ocsfOpcode(op int) string {
	switch op {
	case 0:
		return "Query"
	case 1:
		return "Inverse Query"
	case 2:
		return "Status"
	case 3:
		return "Reserved"
	case 4:
		return "Notify"
	case 5:
		return "Update"
	case 6:
		return "DSO query.Message"
	}
	return "Other"
}

// ocsfFlags are the response header's flags as dns_answer.flag_ids.
func ocsfFlags(r *query.Message) ([]int, []string) {
	var ids []int
	var names []string
	for _, f := range []struct {
		bit  uint16
		id   int
		name string
	}{
		{1 << 10, 1, "Authoritative Answer"}, {1 << 9, 2, "Truncated Response"}, {1 << 8, 3, "Recursion Desired"},
		{1 << 7, 4, "Recursion Available"}, {1 << 5, 5, "Authentic Data"}, {1 << 4, 6, "Checking Disabled"},
	} {
		if r.Flags&f.bit != 0 {
			ids = append(ids, f.id)
			names = append(names, f.name)
		}
	}
	return ids, names
}
