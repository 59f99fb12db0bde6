package gateway

import (
	"bytes"
	"strings"
	"testing"

	"github.com/optgate/optgate/consent"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/coding"
)

// buildSubmits alone: a relayed body goes as one submit_sm as received; a
// text is split into parts (UDH, one reference per message) in the
// alphabet the SMSC reads under data_coding 0, else UCS-2.
func TestBuildSubmits(t *testing.T) {
	g := stageGateway(t, false)
	gsm := &smscLink{srcTON: consent.TONInternational, srcNPI: npiISDN, dc0: coding.GSM7}
	latin := &smscLink{srcTON: consent.TONInternational, srcNPI: npiISDN, dc0: coding.Latin1}

	relay := stageMsg(g)
	relay.Body, relay.DataCoding, relay.ESMClass, relay.RegisteredDelivery = []byte{5, 0, 3, 7, 2, 1, 'h', 'i'}, 0, smpp.ESMClassUDHI, 1
	var tl smpp.TLVs
	if err := tl.SetUint16(smpp.TagDestinationPort, 2948); err != nil {
		t.Fatal(err)
	}
	relay.TLVs = tl.Bytes()
	pdus, err := g.buildSubmits(gsm, relay)
	if err != nil || len(pdus) != 1 {
		t.Fatalf("relayed body: %d PDUs, %v", len(pdus), err)
	}
	p := pdus[0]
	if !bytes.Equal(p.ShortMessage, relay.Body) || p.ESMClass != smpp.ESMClassUDHI || p.DataCoding != 0 || p.RegisteredDelivery != 1 ||
		!bytes.Equal(p.TLVs.Bytes(), relay.TLVs) {
		t.Errorf("relayed body: %+v", p)
	}
	if p.Source.TON != consent.TONInternational || p.Source.NPI != npiISDN || string(p.Source.Addr) != stageNumber[1:] ||
		p.Dest.TON != consent.TONInternational || p.Dest.NPI != npiISDN || string(p.Dest.Addr) != stageTo[1:] {
		t.Errorf("relayed body addresses: %+v -> %+v", p.Source, p.Dest)
	}

	for _, tc := range []struct {
		name  string
		link  *smscLink
		from  string
		text  string
		parts int
		dc    uint8
	}{
		{"one GSM part", gsm, stageNumber, strings.Repeat("a", 160), 1, 0},
		{"two GSM parts", gsm, stageNumber, strings.Repeat("a", 161), 2, 0},
		{"UCS-2", gsm, stageNumber, "zażółć", 1, 8},
		{"two UCS-2 parts", gsm, stageNumber, strings.Repeat("ł", 71), 2, 8},
		{"Latin-1 under data_coding 0", latin, stageNumber, "café", 1, 0},
		{"not Latin-1: UCS-2", latin, stageNumber, "zażółć", 1, 8},
		{"alphanumeric sender", gsm, "ACME", "hi", 1, 0},
	} {
		m := stageMsg(g)
		m.From, m.Text = tc.from, tc.text
		pdus, err := g.buildSubmits(tc.link, m)
		if err != nil || len(pdus) != tc.parts {
			t.Errorf("%s: %d parts, %v; want %d", tc.name, len(pdus), err, tc.parts)
			continue
		}
		var ref byte
		for i, p := range pdus {
			if p.DataCoding != tc.dc {
				t.Errorf("%s: part %d data_coding %d, want %d", tc.name, i+1, p.DataCoding, tc.dc)
			}
			if multi := tc.parts > 1; multi != (p.ESMClass&smpp.ESMClassUDHI != 0) {
				t.Errorf("%s: part %d esm_class %#x", tc.name, i+1, p.ESMClass)
			} else if multi {
				udh, _, err := coding.ParseUDH(p.ShortMessage)
				if err != nil || !udh.Concat || udh.Total != uint8(tc.parts) || udh.Seq != uint8(i+1) || i > 0 && byte(udh.Ref) != ref {
					t.Errorf("%s: part %d UDH %+v %v", tc.name, i+1, udh, err)
				}
				ref = byte(udh.Ref)
			}
		}
		if tc.from == "ACME" && (pdus[0].Source.TON != consent.TONAlphanumeric || pdus[0].Source.NPI != npiUnknown ||
			string(pdus[0].Source.Addr) != "ACME") {
			t.Errorf("%s: source %+v", tc.name, pdus[0].Source)
		}
	}
}
