package gateway

import (
	"errors"
	"strconv"

	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

// serveSMSC handles requests an SMSC sends on our binds: delivery
// receipts and mobile-originated messages. The deliver_sm_resp says
// ESME_ROK only once what the message carried is safe: a consent change
// synced to disk, a receipt forwarded or durably queued. A storage failure
// answers ESME_RX_T_APPN so the SMSC retries.
func (g *Gateway) serveSMSC(l *smscLink, r *smpp.Request) {
	if g.refuseSMSCWhileUnhealthy(r) {
		return // diskfault.go: the SMSC retries
	}
	switch p := r.PDU.(type) {
	case *smpp.DeliverSM:
		if p.IsReceipt() {
			g.handleReceipt(l, r, p)
			return
		}
		g.handleMO(l, r, &p.SM)
	case *smpp.DataSM:
		sm := &smpp.SM{Source: p.Source, Dest: p.Dest, ESMClass: p.ESMClass, DataCoding: p.DataCoding, TLVs: p.TLVs}
		if p.ESMClass&smpp.ESMClassTypeMask == smpp.ESMClassReceipt || p.ESMClass&smpp.ESMClassTypeMask == smpp.ESMClassIntermediate {
			g.handleReceipt(l, r, &smpp.DeliverSM{SM: *sm})
			return
		}
		g.handleMO(l, r, sm)
	case *smpp.AlertNotification:
		// Nothing to do: no response exists.
	default:
		r.Respond(smpp.StatusInvCmdID, nil)
	}
}

// handleMO processes a mobile-originated message from an SMSC.
func (g *Gateway) handleMO(l *smscLink, r *smpp.Request, sm *smpp.SM) {
	from, to, t, ok := g.moKeys(l, r, sm)
	if !ok {
		return // dead-lettered and answered (deadletter.go)
	}
	body := sm.Text()
	dc := coding.DataCoding(sm.DataCoding)
	var ex moExtra
	var text string
	var finish func(ok bool) // for the part that completed a stored set
	// held hands a part of a concatenated MO to addPart: answered (and
	// false returned) unless it completed its set.
	held := func(p part) bool {
		msg, done, err := g.addPart(p)
		switch {
		case errors.Is(err, errBadPart):
			// A retry cannot fix it, and it may hold part of a STOP: it is
			// kept with its raw PDU, logged and counted, then answered.
			g.metrics.mo.WithLabelValues(t.ID, "bad_part").Inc()
			g.deadLetterMO(l, r, sm, unkeyedRefusedPart, err)
			return false
		case err != nil:
			g.metrics.mo.WithLabelValues(t.ID, "store_failed").Inc()
			g.log.Error("MO part not stored, asking the SMSC to retry", "tenant", t.ID, "err", err)
			r.Respond(smpp.StatusXTAppn, nil)
			return false
		case msg == nil:
			r.Respond(smpp.StatusOK, nil) // stored; the set is not complete yet
			return false
		}
		text, finish = msg.Text, done
		return true
	}
	switch {
	case sm.ESMClass&smpp.ESMClassUDHI != 0:
		udh, rest, err := coding.ParseUDH(body)
		if err != nil {
			// A header that cannot be used (a concatenation element
			// numbering its part 0 or beyond the total, which TS 23.040
			// 9.2.3.24.1 says to ignore; a malformed element) is skipped
			// when its length fits, and the rest is the text; UDHI set
			// over octets that hold no header (an SMSC copying esm_class
			// carelessly) leaves them all the text. Either way a STOP is
			// still screened, and the MO kept and forwarded.
			g.metrics.mo.WithLabelValues(t.ID, "bad_udh").Inc()
			rest = body
			if len(body) > 0 && 1+int(body[0]) <= len(body) {
				rest = body[1+int(body[0]):]
			}
			text, _ = coding.Decode(l.readAs(dc), rest)
			ex.readings(l, dc, rest)
		} else if udh.Concat && udh.Total > 1 {
			// The reference width is part of the set.
			if !held(part{set: from + "|" + to, ref: udh.Ref, ref8: !udh.Ref16, total: udh.Total, seq: udh.Seq, dc: l.readAs(dc), data: rest}) {
				return
			}
		} else {
			text, _ = coding.Decode(l.readAs(dc), rest)
			ex.readings(l, dc, rest)
		}
	default:
		// sar_* numbering part 0 or beyond the total is ignored, like the
		// UDH element (the part is a message of its own).
		if ref, total, seq, ok := sm.TLVs.SAR(); ok && total > 1 && seq >= 1 && seq <= total {
			if !held(part{set: from + "|" + to, ref: ref, total: total, seq: seq, dc: l.readAs(dc), data: body}) {
				return
			}
		} else {
			var err error
			text, err = coding.Decode(l.readAs(dc), body)
			if err != nil {
				text = ""
			}
			ex.readings(l, dc, body)
		}
	}
	// user_message_reference is no id to deduplicate by: it is the
	// handset's message reference (TP-MR, 8 bits, cycling; constant from
	// some SMSCs), so two different MOs (HELP then STOP, or STOP, START,
	// STOP) may carry the same one. A single-part MO's retry is told by
	// the retry memory (moretry.go) instead.
	ex.track = ex.reading != "" // single part: readings was called
	if finish != nil {
		// The part that completed a stored set: the SMSC's retry of it
		// (its answer lost) completes the set again, and is known by
		// that part's octets (with its UDH and reference, if any).
		ex.track, ex.body, ex.dc = true, body, uint8(dc)
	}
	go g.inbound(l, r, t, ChannelSMS, to, from, text, "", finish, ex)
}

// moExtra is what handleMO knows of a single-part MO beyond its text: how
// its octets were read, for the keyword screen and the evidence.
type moExtra struct {
	reading    string // how text was decoded: "gsm7", "ia5 (data_coding 0 read as ia5)", ...
	alt        string // another reading of the octets, screened when text has no keyword
	altReading string
	// track: a single-part MO or the part completing a set, whose SMSC
	// retry only its content can tell (moretry.go); body and dc are
	// its octets and data_coding as received.
	track bool
	body  []byte
	dc    uint8
}

// readings fills e for octets b that link l labelled dc: the reading used
// (with the SMSC's override, if any) and, when the octets make sense only
// in another alphabet or form (coding.PackedGSM7Reading: packed septets
// labelled GSM or IA5; coding.AltReading: GSM 03.38 labelled IA5, Latin-1
// labelled GSM; coding.LittleEndianUCS2: UTF-16LE labelled UCS-2), that
// other reading.
func (e *moExtra) readings(l *smscLink, dc coding.DataCoding, b []byte) {
	e.body, e.dc = b, uint8(dc)
	read := l.readAs(dc)
	name := coding.CharsetName(read)
	e.reading = name
	if read != dc {
		e.reading += " (data_coding " + strconv.Itoa(int(dc)) + " read as " + e.reading + ")"
	}
	if name == "gsm7" || name == "ia5" {
		if pk, ok := coding.PackedGSM7Reading(b); ok {
			e.alt, e.altReading = pk, "gsm7 packed (data_coding "+strconv.Itoa(int(dc))+" holds packed GSM 03.38 septets)"
			return
		}
	}
	if alt, ok := coding.AltReading(read, b); ok {
		e.alt, _ = coding.Decode(alt, b)
		e.altReading = coding.CharsetName(alt) + " (data_coding " + strconv.Itoa(int(dc)) + " holds " + coding.CharsetName(alt) + " octets)"
	} else if read == coding.UCS2 {
		if le, ok := coding.LittleEndianUCS2(b); ok {
			e.alt, e.altReading = le, "ucs2 little-endian (data_coding 8 holds UTF-16LE octets)"
		}
	}
}
