package receipt

import (
	"fmt"
	"testing"
	"time"

	"github.com/optgate/optgate/internal/testutil"
	"github.com/optgate/optgate/smpp"
	"github.com/optgate/optgate/smpp/dlr"
)

// missing makes b hand every receipt it finds nowhere to the returned
// channel instead of answering it, as a cluster node does.
func missing(b *Book) chan *Missed {
	ch := make(chan *Missed, 4)
	b.miss = func(m *Missed) { ch <- m }
	return ch
}

// sendAsync sends a receipt from the test SMSC and returns its answer on
// a channel: with Miss set the answer waits for the Missed's outcome.
func sendAsync(send func(id, stat string) error, id, stat string) chan error {
	ch := make(chan error, 1)
	go func() { ch <- send(id, stat) }()
	return ch
}

func nextMissed(t *testing.T, ch chan *Missed) *Missed {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no receipt handed to Miss")
		return nil
	}
}

// A receipt the book finds nowhere (memory, store) goes to Miss, and the
// SMSC's answer waits for its outcome: Retry answers ESME_RX_T_APPN, Taken
// ESME_ROK with the receipt out of the lot (it does not expire as
// uncorrelated), Nobody ESME_ROK with the receipt still parked for an Add.
func TestMissWaitsForTheOtherNodes(t *testing.T) {
	b, rec := newBook(100, time.Minute)
	openStore(t, b, openDB(t, t.TempDir()))
	misses := missing(b)
	send := receiptsTo(t, b)

	answer := sendAsync(send, "R1", "DELIVRD")
	m := nextMissed(t, misses)
	testutil.RequireEqual(t, m.Report.ID, "R1")
	m.Retry()
	testutil.RequireEqual(t, smpp.StatusOf(<-answer), smpp.StatusXTAppn)

	answer = sendAsync(send, "R1", "DELIVRD") // the SMSC sends it again
	nextMissed(t, misses).Taken()
	testutil.RequireEqual(t, <-answer, nil)
	testutil.RequireEqual(t, rec.count("carrier", "claimed"), 1)
	testutil.RequireEqual(t, b.ExpireParked(time.Now().Add(time.Hour)), 0)

	answer = sendAsync(send, "R2", "DELIVRD")
	nextMissed(t, misses).Nobody()
	testutil.RequireEqual(t, <-answer, nil)
	b.Add(carrier, "R2", target("a2")) // its mapping comes within the grace period
	testutil.RequireEqual(t, len(rec.deliveries()), 1)
	testutil.RequireEqual(t, rec.deliveries()[0].t.MsgID, "a2")
}

// An Add that brings the mapping while the other nodes are asked
// delivers the receipt; the claim's failure then answers ESME_ROK, not a
// retry that would deliver it twice.
func TestMissAddedMeanwhile(t *testing.T) {
	b, rec := newBook(100, time.Minute)
	misses := missing(b)
	send := receiptsTo(t, b)
	answer := sendAsync(send, "R3", "DELIVRD")
	m := nextMissed(t, misses)
	b.Add(carrier, "R3", target("a3"))
	testutil.RequireEqual(t, len(rec.deliveries()), 1)
	m.Retry()
	testutil.RequireEqual(t, <-answer, nil)
	testutil.RequireEqual(t, rec.count("carrier", "retried"), 0)
}

// Claim delivers a receipt another node could not correlate when this
// book knows its mapping, in memory or (store set) in the store; a final
// receipt removes the mapping, so a second claim finds nothing.
func TestClaimTakesKnownReceipts(t *testing.T) {
	b, rec := newBook(100, time.Minute)
	openStore(t, b, openDB(t, t.TempDir()))
	var answers []smpp.CommandStatus
	answer := func(st smpp.CommandStatus) { answers = append(answers, st) }
	final := Report{ID: "R4", State: dlr.StateFromStat("DELIVRD"), Stat: "DELIVRD"}

	if found, err := b.Claim(carrier, final, answer, true); found || err != nil {
		t.Fatalf("claim of an unknown receipt: %v, %v", found, err)
	}
	b.Add(carrier, "R4", target("a4"))
	if found, _ := b.Claim(carrier, final, answer, false); !found {
		t.Fatal("claim of a receipt in memory: not found")
	}
	if found, _ := b.Claim(carrier, final, answer, true); found {
		t.Fatal("a final receipt claimed twice was delivered twice")
	}

	b.Add(carrier, "R5", target("a5"))
	b.Forget() // only the store has it now, once its writer took it
	testutil.CheckFor(t, 10*time.Second, func() error {
		if _, found, err := b.Stored(carrier, "R5"); !found {
			return fmt.Errorf("mapping not in the store yet (%v)", err)
		}
		return nil
	})
	final.ID = "R5"
	if found, _ := b.Claim(carrier, final, answer, false); found {
		t.Fatal("claim without the store found a mapping only the store has")
	}
	if found, err := b.Claim(carrier, final, answer, true); !found || err != nil {
		t.Fatalf("claim of a stored receipt: %v, %v", found, err)
	}
	got := rec.deliveries()
	testutil.RequireEqual(t, len(got), 2)
	testutil.RequireEqual(t, got[0].t.MsgID, "a4")
	testutil.RequireEqual(t, got[1].t.MsgID, "a5")
	testutil.RequireEqual(t, answers, []smpp.CommandStatus{smpp.StatusOK, smpp.StatusOK})
}

// A receipt no node knew when it came is asked of the other nodes once
// more when it expires (its SMSC long answered): an SMSC that answers a
// submit only once its receipt is answered brings the mapping to the
// other node only then. Its outcome is counted then, not as expired.
func TestMissAskedAgainAtExpiry(t *testing.T) {
	b, rec := newBook(100, time.Second)
	misses := missing(b)
	send := receiptsTo(t, b)
	answer := sendAsync(send, "R6", "DELIVRD")
	nextMissed(t, misses).Nobody()
	testutil.RequireEqual(t, <-answer, nil)
	testutil.RequireEqual(t, b.ExpireParked(time.Now()), 0) // within its grace: still parked, nothing asked
	select {
	case m := <-misses:
		t.Fatalf("asked again before its expiry: %+v", m.Report)
	default:
	}
	testutil.RequireEqual(t, b.ExpireParked(time.Now().Add(time.Minute)), 0)
	m := nextMissed(t, misses)
	testutil.RequireEqual(t, m.Report.ID, "R6")
	m.Taken()
	testutil.RequireEqual(t, rec.count("carrier", "claimed"), 1)

	answer = sendAsync(send, "R7", "DELIVRD")
	nextMissed(t, misses).Nobody()
	testutil.RequireEqual(t, <-answer, nil)
	b.ExpireParked(time.Now().Add(time.Minute))
	nextMissed(t, misses).Nobody()
	testutil.RequireEqual(t, rec.count("carrier", "uncorrelated"), 1)
	testutil.RequireEqual(t, b.ExpireParked(time.Now().Add(time.Hour)), 0) // gone: not asked a third time
	select {
	case m := <-misses:
		t.Fatalf("asked a third time: %+v", m.Report)
	default:
	}
}
