package smpp

import (
	"errors"
	"fmt"
)

// CommandStatus is the command_status field of an SMPP PDU header (SMPP 3.4 §5.1.3).
type CommandStatus uint32

// Command status values from SMPP 3.4 §5.1.3. The 0xC0–0xC4 names follow the
// reference (v5.0 spelling); the values are the 3.4 ones.
const (
	StatusOK              CommandStatus = 0x00000000 // ESME_ROK
	StatusInvMsgLen       CommandStatus = 0x00000001 // ESME_RINVMSGLEN
	StatusInvCmdLen       CommandStatus = 0x00000002 // ESME_RINVCMDLEN
	StatusInvCmdID        CommandStatus = 0x00000003 // ESME_RINVCMDID
	StatusInvBndSts       CommandStatus = 0x00000004 // ESME_RINVBNDSTS
	StatusAlyBnd          CommandStatus = 0x00000005 // ESME_RALYBND
	StatusInvPrtFlg       CommandStatus = 0x00000006 // ESME_RINVPRTFLG
	StatusInvRegDlvFlg    CommandStatus = 0x00000007 // ESME_RINVREGDLVFLG
	StatusSysErr          CommandStatus = 0x00000008 // ESME_RSYSERR
	StatusInvSrcAdr       CommandStatus = 0x0000000A // ESME_RINVSRCADR
	StatusInvDstAdr       CommandStatus = 0x0000000B // ESME_RINVDSTADR
	StatusInvMsgID        CommandStatus = 0x0000000C // ESME_RINVMSGID
	StatusBindFail        CommandStatus = 0x0000000D // ESME_RBINDFAIL
	StatusInvPaswd        CommandStatus = 0x0000000E // ESME_RINVPASWD
	StatusInvSysID        CommandStatus = 0x0000000F // ESME_RINVSYSID
	StatusCancelFail      CommandStatus = 0x00000011 // ESME_RCANCELFAIL
	StatusReplaceFail     CommandStatus = 0x00000013 // ESME_RREPLACEFAIL
	StatusMsgQFul         CommandStatus = 0x00000014 // ESME_RMSGQFUL
	StatusInvSerTyp       CommandStatus = 0x00000015 // ESME_RINVSERTYP
	StatusInvNumDests     CommandStatus = 0x00000033 // ESME_RINVNUMDESTS
	StatusInvDLName       CommandStatus = 0x00000034 // ESME_RINVDLNAME
	StatusInvDestFlag     CommandStatus = 0x00000040 // ESME_RINVDESTFLAG
	StatusInvSubRep       CommandStatus = 0x00000042 // ESME_RINVSUBREP
	StatusInvEsmClass     CommandStatus = 0x00000043 // ESME_RINVESMCLASS
	StatusCntSubDL        CommandStatus = 0x00000044 // ESME_RCNTSUBDL
	StatusSubmitFail      CommandStatus = 0x00000045 // ESME_RSUBMITFAIL
	StatusInvSrcTON       CommandStatus = 0x00000048 // ESME_RINVSRCTON
	StatusInvSrcNPI       CommandStatus = 0x00000049 // ESME_RINVSRCNPI
	StatusInvDstTON       CommandStatus = 0x00000050 // ESME_RINVDSTTON
	StatusInvDstNPI       CommandStatus = 0x00000051 // ESME_RINVDSTNPI
	StatusInvSysTyp       CommandStatus = 0x00000053 // ESME_RINVSYSTYP
	StatusInvRepFlag      CommandStatus = 0x00000054 // ESME_RINVREPFLAG
	StatusInvNumMsgs      CommandStatus = 0x00000055 // ESME_RINVNUMMSGS
	StatusThrottled       CommandStatus = 0x00000058 // ESME_RTHROTTLED
	StatusInvSched        CommandStatus = 0x00000061 // ESME_RINVSCHED
	StatusInvExpiry       CommandStatus = 0x00000062 // ESME_RINVEXPIRY
	StatusInvDftMsgID     CommandStatus = 0x00000063 // ESME_RINVDFTMSGID
	StatusXTAppn          CommandStatus = 0x00000064 // ESME_RX_T_APPN: temporary, retry later
	StatusXPAppn          CommandStatus = 0x00000065 // ESME_RX_P_APPN: permanent for the destination
	StatusXRAppn          CommandStatus = 0x00000066 // ESME_RX_R_APPN: reject this message only
	StatusQueryFail       CommandStatus = 0x00000067 // ESME_RQUERYFAIL
	StatusInvTLVStream    CommandStatus = 0x000000C0 // ESME_RINVTLVSTREAM (3.4: RINVOPTPARSTREAM)
	StatusTLVNotAllwd     CommandStatus = 0x000000C1 // ESME_RTLVNOTALLWD (3.4: ROPTPARNOTALLWD)
	StatusInvTLVLen       CommandStatus = 0x000000C2 // ESME_RINVTLVLEN (3.4: RINVPARLEN)
	StatusMissingTLV      CommandStatus = 0x000000C3 // ESME_RMISSINGTLV (3.4: RMISSINGOPTPARAM)
	StatusInvTLVVal       CommandStatus = 0x000000C4 // ESME_RINVTLVVAL (3.4: RINVOPTPARAMVAL)
	StatusDeliveryFailure CommandStatus = 0x000000FE // ESME_RDELIVERYFAILURE
	StatusUnknownErr      CommandStatus = 0x000000FF // ESME_RUNKNOWNERR

	// optgate's codes in the SMSC vendor-specific range 0x400–0x4FF. They
	// refuse a submit before any carrier sees it; every one is permanent for
	// Kannel-like peers (only 0x08, 0x14, 0x58 and 0x64 are retried).
	StatusOptedOut        CommandStatus = 0x00000401 // recipient opted out (STOP)
	StatusMarketingOptOut CommandStatus = 0x00000402 // recipient opted out of marketing
	StatusNoConsent       CommandStatus = 0x00000403 // no consent: attestation pending or required
	StatusWhatsAppWindow  CommandStatus = 0x00000404 // WhatsApp 24-hour window closed, template required
)

var statusNames = map[CommandStatus]string{
	StatusOK: "ESME_ROK", StatusInvMsgLen: "ESME_RINVMSGLEN", StatusInvCmdLen: "ESME_RINVCMDLEN",
	StatusInvCmdID: "ESME_RINVCMDID", StatusInvBndSts: "ESME_RINVBNDSTS", StatusAlyBnd: "ESME_RALYBND",
	StatusInvPrtFlg: "ESME_RINVPRTFLG", StatusInvRegDlvFlg: "ESME_RINVREGDLVFLG", StatusSysErr: "ESME_RSYSERR",
	StatusInvSrcAdr: "ESME_RINVSRCADR", StatusInvDstAdr: "ESME_RINVDSTADR", StatusInvMsgID: "ESME_RINVMSGID",
	StatusBindFail: "ESME_RBINDFAIL", StatusInvPaswd: "ESME_RINVPASWD", StatusInvSysID: "ESME_RINVSYSID",
	StatusCancelFail: "ESME_RCANCELFAIL", StatusReplaceFail: "ESME_RREPLACEFAIL", StatusMsgQFul: "ESME_RMSGQFUL",
	StatusInvSerTyp: "ESME_RINVSERTYP", StatusInvNumDests: "ESME_RINVNUMDESTS", StatusInvDLName: "ESME_RINVDLNAME",
	StatusInvDestFlag: "ESME_RINVDESTFLAG", StatusInvSubRep: "ESME_RINVSUBREP", StatusInvEsmClass: "ESME_RINVESMCLASS",
	StatusCntSubDL: "ESME_RCNTSUBDL", StatusSubmitFail: "ESME_RSUBMITFAIL", StatusInvSrcTON: "ESME_RINVSRCTON",
	StatusInvSrcNPI: "ESME_RINVSRCNPI", StatusInvDstTON: "ESME_RINVDSTTON", StatusInvDstNPI: "ESME_RINVDSTNPI",
	StatusInvSysTyp: "ESME_RINVSYSTYP", StatusInvRepFlag: "ESME_RINVREPFLAG", StatusInvNumMsgs: "ESME_RINVNUMMSGS",
	StatusThrottled: "ESME_RTHROTTLED", StatusInvSched: "ESME_RINVSCHED", StatusInvExpiry: "ESME_RINVEXPIRY",
	StatusInvDftMsgID: "ESME_RINVDFTMSGID", StatusXTAppn: "ESME_RX_T_APPN", StatusXPAppn: "ESME_RX_P_APPN",
	StatusXRAppn: "ESME_RX_R_APPN", StatusQueryFail: "ESME_RQUERYFAIL", StatusInvTLVStream: "ESME_RINVTLVSTREAM",
	StatusTLVNotAllwd: "ESME_RTLVNOTALLWD", StatusInvTLVLen: "ESME_RINVTLVLEN", StatusMissingTLV: "ESME_RMISSINGTLV",
	StatusInvTLVVal: "ESME_RINVTLVVAL", StatusDeliveryFailure: "ESME_RDELIVERYFAILURE", StatusUnknownErr: "ESME_RUNKNOWNERR",
	StatusOptedOut: "OPTGATE_ROPTEDOUT", StatusMarketingOptOut: "OPTGATE_RMKTOPTOUT",
	StatusNoConsent: "OPTGATE_RNOCONSENT", StatusWhatsAppWindow: "OPTGATE_RWAWINDOW",
}

// String returns the status's ESME_ name, or its hex value with the range it
// falls in for codes without a name.
// Known reports whether s has a name (SMPP 3.4 or one of optgate's).
func (s CommandStatus) Known() bool { _, ok := statusNames[s]; return ok }

func (s CommandStatus) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	switch {
	case s >= 0x400 && s <= 0x4FF:
		return fmt.Sprintf("vendor(0x%08X)", uint32(s))
	case s >= 0x100 && s <= 0x3FF:
		return fmt.Sprintf("reserved(0x%08X)", uint32(s))
	}
	return fmt.Sprintf("0x%08X", uint32(s))
}

// Temporary reports whether a submit refused with s is worth retrying later,
// following the classes Kannel uses: queue full, throttled, temporary
// application error and system error.
func (s CommandStatus) Temporary() bool {
	switch s {
	case StatusMsgQFul, StatusThrottled, StatusXTAppn, StatusSysErr:
		return true
	}
	return false
}

// StatusError is a PDU answered, or to be answered, with a non-zero
// command_status. Op names the PDU or field concerned.
type StatusError struct {
	Status CommandStatus
	Op     string // e.g. "submit_sm", "submit_sm.source_addr"
	Reason string // optional detail
}

func (e *StatusError) Error() string {
	if e.Reason != "" {
		return "smpp: " + e.Op + ": " + e.Reason + " (" + e.Status.String() + ")"
	}
	return "smpp: " + e.Op + ": " + e.Status.String()
}

// StatusOf returns the command_status carried by err: the status of a
// *StatusError anywhere in its chain, StatusOK for nil and StatusSysErr
// otherwise.
func StatusOf(err error) CommandStatus {
	if err == nil {
		return StatusOK
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return StatusSysErr
}

// Sentinel errors. Errors a bind survives are answered with a status and the
// session goes on; the others close the connection with a CloseReason.
var (
	ErrShortBuffer    = errors.New("smpp: truncated PDU")
	ErrCommandLength  = errors.New("smpp: command_length out of range")
	ErrWindowFull     = errors.New("smpp: window full")
	ErrClosed         = errors.New("smpp: connection closed")
	ErrServerClosed   = errors.New("smpp: server closed")
	ErrClientClosed   = errors.New("smpp: client closed")
	ErrTimeout        = errors.New("smpp: response timeout")
	ErrNotBound       = errors.New("smpp: no bound session")
	ErrUnknownCommand = errors.New("smpp: unknown command_id")

	// ErrNotWritten marks a request that never reached the wire: refused
	// before it was queued, or still queued (or only partly written) when
	// its connection closed. The peer cannot have it, so sending it again
	// on another session is safe. It comes wrapped with ErrClosed.
	ErrNotWritten = errors.New("smpp: request not written")
	// ErrUnknownOutcome marks a request whose frame was written but whose
	// response never came because the connection closed: the peer may
	// have processed it. Sending it again may duplicate it; Client never
	// does so on its own. It comes wrapped with ErrClosed.
	ErrUnknownOutcome = errors.New("smpp: request written, connection closed before its response")
)

// errNotSent is what SendAsync returns for a request it could not queue.
var errNotSent = fmt.Errorf("%w: %w", ErrClosed, ErrNotWritten)
