// Package receipt is the gateway's receipt book: it maps the id an SMSC
// gave each part of our message to where that part's delivery receipts
// go, correlates the receipts carriers send back, and keeps the mappings
// in the gateway's Badger store so late receipts and receipts after a
// restart still find their message.
package receipt
