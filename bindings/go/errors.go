package nexus

import (
	"strconv"
	"strings"
)

// Status codes of the C ABI (values fixed by the contract in docs/API.md). An
// *Error carries one of them in its Code field. Callers should treat codes
// they do not know as errors: new codes may appear in minor versions.
const (
	// CodeOK is success; it never appears in an *Error.
	CodeOK = 0
	// CodeError is a generic failure (also used for a database or cursor
	// used after Close).
	CodeError = 1
	// CodeNotFound means no document matched (Get, FindOne, FindOneAndUpdate, ...).
	CodeNotFound = 2
	// CodeInvalidArgument means a NULL, bad UTF-8, NUL byte or bad option was passed.
	CodeInvalidArgument = 3
	// CodeParse means malformed JSON, BSON, filter or update.
	CodeParse = 4
	// CodeDuplicateKey means an _id, unique index key or collection name already exists.
	CodeDuplicateKey = 5
	// CodeNoCollection means the collection does not exist.
	CodeNoCollection = 6
	// CodeIO is an operating-system I/O failure.
	CodeIO = 7
	// CodeCorrupt is a checksum or file-format failure.
	CodeCorrupt = 8
	// CodeBusy means the write lock was held too long by another connection or process.
	CodeBusy = 9
	// CodeReadOnly means a write was attempted on a read-only database.
	CodeReadOnly = 10
	// CodeTxn means no transaction, already in one, or a conflict.
	CodeTxn = 11
	// CodeCrypto means a signature is missing or does not match its data and key
	// (later also: a key that cannot open an encrypted database).
	CodeCrypto = 12
	// CodeUnsupported means the feature or option is not supported (yet).
	CodeUnsupported = 13
	// CodeInternal means the library caught an internal panic.
	CodeInternal = 99
	// CodeRow is the cursor status "a document is available"; never in an *Error.
	CodeRow = 100
	// CodeDone is the cursor status "no more documents"; never in an *Error.
	CodeDone = 101
)

var codeNames = map[int]string{
	CodeOK:              "ok",
	CodeError:           "error",
	CodeNotFound:        "not found",
	CodeInvalidArgument: "invalid argument",
	CodeParse:           "parse error",
	CodeDuplicateKey:    "duplicate key",
	CodeNoCollection:    "no such collection",
	CodeIO:              "I/O error",
	CodeCorrupt:         "corrupt database",
	CodeBusy:            "busy",
	CodeReadOnly:        "read-only",
	CodeTxn:             "transaction error",
	CodeCrypto:          "crypto error",
	CodeUnsupported:     "unsupported",
	CodeInternal:        "internal error",
	CodeRow:             "row",
	CodeDone:            "done",
}

// CodeName returns a short human-readable name for a status code, such as
// "not found" for CodeNotFound, or "code N" for a code this package does not
// know.
func CodeName(code int) string {
	if n, ok := codeNames[code]; ok {
		return n
	}
	return "code " + strconv.Itoa(code)
}

// Error is the error type returned by every operation of this package that
// fails inside the library (and by the checks this package does itself).
//
// Use errors.As to inspect it, or errors.Is with one of the sentinels
// (ErrNotFound, ErrDuplicateKey, ...), which match any *Error with the same
// Code:
//
//	if errors.Is(err, nexus.ErrNotFound) { ... }
type Error struct {
	// Code is one of the Code* constants (the C ABI status code).
	Code int
	// Message is the library's message for this failure (nexus_errmsg),
	// naming what went wrong and where.
	Message string
	// Op is the operation that failed, e.g. "insert" or "find"; it may be
	// empty.
	Op string
}

// Error formats the error as "nexus: OP: CODE NAME: MESSAGE" (without
// repeating the code name when the message starts with it).
func (e *Error) Error() string {
	s := "nexus: "
	if e.Op != "" {
		s += e.Op + ": "
	}
	name := CodeName(e.Code)
	switch {
	case e.Message == "":
		s += name
	case strings.HasPrefix(strings.ToLower(e.Message), name+":"):
		// The library's message already starts with the code's name.
		s += e.Message
	default:
		s += name + ": " + e.Message
	}
	return s
}

// Is reports whether target is a sentinel *Error (one with no Message and no
// Op, such as ErrNotFound) with the same Code as e, so that
// errors.Is(err, ErrNotFound) works for every not-found error.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t == e {
		return true
	}
	return t.Message == "" && t.Op == "" && t.Code == e.Code
}

// Sentinel errors for errors.Is; each matches every *Error with its Code.
var (
	// ErrNotFound matches errors with CodeNotFound.
	ErrNotFound = &Error{Code: CodeNotFound}
	// ErrInvalidArgument matches errors with CodeInvalidArgument.
	ErrInvalidArgument = &Error{Code: CodeInvalidArgument}
	// ErrParse matches errors with CodeParse.
	ErrParse = &Error{Code: CodeParse}
	// ErrDuplicateKey matches errors with CodeDuplicateKey.
	ErrDuplicateKey = &Error{Code: CodeDuplicateKey}
	// ErrNoCollection matches errors with CodeNoCollection.
	ErrNoCollection = &Error{Code: CodeNoCollection}
	// ErrIO matches errors with CodeIO.
	ErrIO = &Error{Code: CodeIO}
	// ErrCorrupt matches errors with CodeCorrupt.
	ErrCorrupt = &Error{Code: CodeCorrupt}
	// ErrBusy matches errors with CodeBusy.
	ErrBusy = &Error{Code: CodeBusy}
	// ErrReadOnly matches errors with CodeReadOnly.
	ErrReadOnly = &Error{Code: CodeReadOnly}
	// ErrTxn matches errors with CodeTxn.
	ErrTxn = &Error{Code: CodeTxn}
	// ErrCrypto matches errors with CodeCrypto.
	ErrCrypto = &Error{Code: CodeCrypto}
	// ErrUnsupported matches errors with CodeUnsupported.
	ErrUnsupported = &Error{Code: CodeUnsupported}
	// ErrInternal matches errors with CodeInternal.
	ErrInternal = &Error{Code: CodeInternal}

	// ErrClosed is returned by every method of a DB (and its Collections)
	// after DB.Close. It has CodeError but, carrying a message, matches only
	// itself under errors.Is.
	ErrClosed = &Error{Code: CodeError, Message: "database is closed"}
)

// withOp returns err with Op set when it is an *Error without one.
func withOp(err error, op string) error {
	if e, ok := err.(*Error); ok && e.Op == "" {
		c := *e
		c.Op = op
		return &c
	}
	return err
}
