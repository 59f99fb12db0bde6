// Package testutil holds the assertions every package's tests share: one
// RequireEqual, one CheckFor and one goroutine leak check for TestMain.
//
// It is imported only from _test.go files. It depends on nothing of ours so
// that the leaf packages (smpp, consent, whatsapp) can use it without
// importing each other. It is shaped after the nats-server test helpers
// (require_Equal, checkFor) rather than an assertion library: three small
// functions cover what the tests need, and a failure names what was compared.
package testutil
