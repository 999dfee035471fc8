package export

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"

	"github.com/dnsrec/dnsrec/query"
)

// writePcapng writes one packet per message, rebuilt from the stored DNS
// bytes and the flow: IPv4 or IPv6, then UDP, or TCP with the two-byte
// length prefix of DNS over TCP and sequence numbers that run on per flow
// and direction, so that Wireshark decodes every message. The link type is
// raw IP (no made-up MAC addresses). Each evidence file is one interface,
// named after the file. A message cut at snaplen keeps its original length
// and only its captured bytes; its checksum, which would cover bytes nobody
// has, is 0. Each packet's comments name the processes that sent and
// received it, with their parent chains; see EXPORTS.md.
func writePcapng(ctx context.Context, d *query.DB, w io.Writer, f query.Filter) (Stats, error) {
	var st Stats
	pw, err := newPcapngWriter(w, d.Paths())
	if err != nil {
		return st, err
	}
	err = d.Messages(ctx, query.MessageOptions{Filter: f, Raw: true, Ancestry: true}, func(m *query.Message) error {
		st.Messages++
		if err := pw.write(m); err != nil {
			return err
		}
		st.Rows++
		return nil
	})
	if err != nil {
		return st, err
	}
	return st, pw.close()
}

// pcapngWriter writes messages as packets.
type pcapngWriter struct {
	ngw    *pcapgo.NgWriter
	ifaces map[string]int
	pb     *packetBuilder
	opts   pcapgo.NgPacketOptions
	procs  map[*query.Process]string // rendered processes: messages share their query.Process
	b      []byte
}

// maxProcCache bounds pcapngWriter.procs.
const maxProcCache = 100_000

func newPcapngWriter(w io.Writer, paths []string) (*pcapngWriter, error) {
	iface := func(path string) pcapgo.NgInterface {
		return pcapgo.NgInterface{
			Name:                filepath.Base(path),
			Description:         "dnsrec evidence " + path,
			LinkType:            layers.LinkTypeRaw,
			TimestampResolution: 9,
		}
	}
	ngw, err := pcapgo.NewNgWriterInterface(w, iface(paths[0]), pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{
		Application: "dnsrec query export",
		Comment:     "DNS messages rebuilt from dnsrec evidence; each packet's comments name its processes",
	}})
	if err != nil {
		return nil, fmt.Errorf("pcapng: %w", err)
	}
	pw := &pcapngWriter{ngw: ngw, ifaces: map[string]int{paths[0]: 0}, pb: newPacketBuilder(), procs: map[*query.Process]string{}}
	for _, p := range paths[1:] {
		i, err := ngw.AddInterface(iface(p))
		if err != nil {
			return nil, fmt.Errorf("pcapng: %w", err)
		}
		pw.ifaces[p] = i
	}
	return pw, nil
}

func (pw *pcapngWriter) write(m *query.Message) error {
	data, wireLen, note, err := pw.pb.build(m)
	if err != nil {
		return fmt.Errorf("pcapng: message %d: %w", m.ID, err)
	}
	ci := gopacket.CaptureInfo{Timestamp: m.Time, CaptureLength: len(data), Length: wireLen, InterfaceIndex: pw.ifaces[m.File]}
	pw.opts.Comments = pw.comments(pw.opts.Comments[:0], m, note)
	if err := pw.ngw.WritePacketWithOptions(ci, data, pw.opts); err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	return nil
}

func (pw *pcapngWriter) close() error {
	if err := pw.ngw.Flush(); err != nil {
		return fmt.Errorf("pcapng: %w", err)
	}
	return nil
}

// dotNote is the comment of a DNS-over-TLS message's packet.
const dotNote = "DNS over TLS read in clear at the TLS library: the TLS layer is not in this capture (Wireshark: Decode As, TCP port, DNS; tshark -d tcp.port==853,dns)"

// maxComment is the longest option value pcapng can hold (a 16-bit length).
const maxComment = 65535

// comments names what is known about m: where it comes from, and the
// process at each end observed on the host.
func (pw *pcapngWriter) comments(dst []string, m *query.Message, note string) []string {
	b := pw.b[:0]
	uidID := m.ID
	if m.Response {
		b = append(b, "dnsrec response: host="...)
		if m.QueryID != 0 {
			uidID = m.QueryID
		}
	} else {
		b = append(b, "dnsrec query: host="...)
	}
	b = append(b, m.Host...)
	b = append(b, " file="...)
	b = append(b, filepath.Base(m.File)...)
	b = append(b, " msg="...)
	b = strconv.AppendInt(b, m.ID, 10)
	b = append(b, " uid="...)
	b = append(b, query.ExchangeUID(m, uidID)...)
	if m.QueryID != 0 {
		b = append(b, " reply_to="...)
		b = strconv.AppendInt(b, m.QueryID, 10)
	}
	if m.Latency > 0 {
		b = append(b, " latency_ms="...)
		b = append(b, query.Millis(m.Latency).String()...)
	}
	if n := m.Note(); n != "" {
		b = append(b, "; "...)
		b = append(b, n...)
	}
	if note != "" {
		b = append(b, "; "...)
		b = append(b, note...)
	}
	pw.b = b
	dst = append(dst, clip(string(b)))
	if p := m.Sender; p != nil {
		dst = append(dst, clip("sent by "+pw.party(p)))
	}
	if p := m.Receiver; p != nil {
		s := "received by " + pw.party(p)
		if m.Sender != nil {
			s += " (" + query.Millis(p.Time.Sub(m.Time)).String() + " ms after the send)"
		}
		dst = append(dst, clip(s))
	}
	return dst
}

// party renders one observed end: its role, then the process.
func (pw *pcapngWriter) party(p *query.Party) string {
	role := "client: "
	if p.Server {
		role = "server: "
	}
	if p.Proc == nil {
		return role + "process not identified (socket " + strconv.FormatInt(p.Socket, 10) + ")"
	}
	s, ok := pw.procs[p.Proc]
	if !ok {
		if len(pw.procs) >= maxProcCache {
			clear(pw.procs)
		}
		s = procDesc(p.Proc)
		pw.procs[p.Proc] = s
	}
	if p.Iface != "" {
		return role + s + " iface=" + quoteIfNeeded(p.Iface)
	}
	return role + s
}

// procDesc renders a process as key=value pairs: pid, tid (when not the
// main thread), comm, exe, uid, cmdline, ancestry.
func procDesc(pr *query.Process) string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid=%d", pr.PID)
	if pr.TID != 0 && pr.TID != pr.PID {
		fmt.Fprintf(&b, " tid=%d", pr.TID)
	}
	if pr.Comm != "" {
		b.WriteString(" comm=" + quoteIfNeeded(pr.Comm))
	}
	if pr.Exe != "" {
		b.WriteString(" exe=" + quoteIfNeeded(pr.Exe))
	}
	if pr.UID.Valid {
		fmt.Fprintf(&b, " uid=%d", pr.UID.V)
	}
	if len(pr.Argv) > 0 {
		b.WriteString(" cmdline=" + strconv.Quote(query.ShellQuote(pr.Argv)))
	}
	if len(pr.Ancestry) > 0 {
		b.WriteString(" ancestry=" + strconv.Quote(pr.Ancestry.String()))
	}
	if pr.Container != "" {
		b.WriteString(" container=" + quoteIfNeeded(pr.Container))
	}
	return b.String()
}

func quoteIfNeeded(s string) string {
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '\\' || r >= 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}

func clip(s string) string {
	if len(s) <= maxComment {
		return s
	}
	return s[:maxComment-3] + "..."
}

// packetBuilder rebuilds IP packets around DNS messages.
type packetBuilder struct {
	buf  gopacket.SerializeBuffer
	opts gopacket.SerializeOptions
	ip4  layers.IPv4
	ip6  layers.IPv6
	udp  layers.UDP
	tcp  layers.TCP
	// seq is the next sequence number of each TCP flow and direction.
	seq map[tcpDir]uint32
	pay []byte
}

type tcpDir struct {
	file     string
	src, dst netip.AddrPort
}

// maxTCPFlows bounds seq; past it the numbering starts over (Wireshark then
// sees a gap, never a wrong message).
const maxTCPFlows = 1 << 20

func newPacketBuilder() *packetBuilder {
	return &packetBuilder{
		buf:  gopacket.NewSerializeBuffer(),
		opts: gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		seq:  map[tcpDir]uint32{},
	}
}

// build returns m as a packet, its length on the wire, and a note when the
// packet had to differ from what was on the wire.
func (pb *packetBuilder) build(m *query.Message) (data []byte, wireLen int, note string, err error) {
	src, dst := m.Src.Addr(), m.Dst.Addr()
	v4 := (src.Unmap().Is4() || !src.IsValid()) && (dst.Unmap().Is4() || !dst.IsValid())
	if v4 {
		src, dst = addrOr(src.Unmap(), netip.IPv4Unspecified()), addrOr(dst.Unmap(), netip.IPv4Unspecified())
	} else {
		src, dst = as6(src), as6(dst)
	}
	// DNS over TLS was recorded in clear at the TLS library: it is written
	// as the plaintext DNS-over-TCP stream it carried, on the connection's
	// real ports, and says so. The TLS records are not in the evidence, and
	// rewriting the port to 53 would misstate the connection; Wireshark
	// dissects port 853 as TLS, so the comment says how to see the DNS.
	tcp := m.Proto != "udp"
	if m.Proto == "dot" {
		note = dotNote
	}
	hdr := 20
	if !v4 {
		hdr = 40
	}
	if tcp {
		hdr += 20
	} else {
		hdr += 8
	}

	// The DNS message as it was on the wire: the captured bytes, then
	// (for a cut message) zeros standing for the bytes not captured.
	size := max(m.Size, len(m.Raw))
	pre := 0
	if tcp {
		pre = 2
	}
	// IPv4's total length and IPv6's payload length are 16 bits.
	limit := 65535 - (hdr - 40) - pre
	if v4 {
		limit = 65535 - hdr - pre
	}
	if size > limit {
		note = strings.TrimPrefix(note+"; ", "; ") + fmt.Sprintf("length clamped from %d to %d bytes to fit an IP packet", size, limit)
		size = limit
	}
	captured := min(len(m.Raw), size)
	pb.pay = pb.pay[:0]
	if tcp {
		pb.pay = binary.BigEndian.AppendUint16(pb.pay, uint16(size))
	}
	pb.pay = append(pb.pay, m.Raw[:captured]...)
	for len(pb.pay) < pre+size {
		pb.pay = append(pb.pay, 0)
	}
	cut := captured < size

	var nl gopacket.NetworkLayer
	var sl gopacket.SerializableLayer
	proto := layers.IPProtocolUDP
	if tcp {
		proto = layers.IPProtocolTCP
	}
	if v4 {
		pb.ip4 = layers.IPv4{Version: 4, IHL: 5, TTL: 64, Flags: layers.IPv4DontFragment, Protocol: proto,
			SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		nl, sl = &pb.ip4, &pb.ip4
	} else {
		pb.ip6 = layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto,
			SrcIP: net.IP(src.AsSlice()), DstIP: net.IP(dst.AsSlice())}
		nl, sl = &pb.ip6, &pb.ip6
	}
	var l4 gopacket.SerializableLayer
	if tcp {
		fwd := tcpDir{m.File, m.Src, m.Dst}
		rev := tcpDir{m.File, m.Dst, m.Src}
		if len(pb.seq) >= maxTCPFlows {
			clear(pb.seq)
		}
		seq, ok := pb.seq[fwd]
		if !ok {
			seq = 1
		}
		ack, ok := pb.seq[rev]
		if !ok {
			ack = 1
			pb.seq[rev] = ack
		}
		pb.seq[fwd] = seq + uint32(len(pb.pay))
		pb.tcp = layers.TCP{SrcPort: layers.TCPPort(m.Src.Port()), DstPort: layers.TCPPort(m.Dst.Port()),
			Seq: seq, Ack: ack, ACK: true, PSH: true, Window: 65535, DataOffset: 5}
		if err := pb.tcp.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, 0, "", err
		}
		l4 = &pb.tcp
	} else {
		pb.udp = layers.UDP{SrcPort: layers.UDPPort(m.Src.Port()), DstPort: layers.UDPPort(m.Dst.Port())}
		if err := pb.udp.SetNetworkLayerForChecksum(nl); err != nil {
			return nil, 0, "", err
		}
		l4 = &pb.udp
	}
	if err := pb.buf.Clear(); err != nil {
		return nil, 0, "", err
	}
	if err := gopacket.SerializeLayers(pb.buf, pb.opts, sl, l4, gopacket.Payload(pb.pay)); err != nil {
		return nil, 0, "", err
	}
	data = pb.buf.Bytes()
	wireLen = len(data)
	if cut {
		// The checksum covers bytes that were not captured: unknown.
		if tcp {
			data[hdr-4], data[hdr-3] = 0, 0
		} else {
			data[hdr-2], data[hdr-1] = 0, 0
		}
		data = data[:hdr+pre+captured]
	}
	return data, wireLen, note, nil
}

func addrOr(a, def netip.Addr) netip.Addr {
	if a.IsValid() {
		return a
	}
	return def
}

func as6(a netip.Addr) netip.Addr {
	if !a.IsValid() {
		return netip.IPv6Unspecified()
	}
	return netip.AddrFrom16(a.As16())
}
