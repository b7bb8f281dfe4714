package nexus

import (
	"bytes"
	"runtime"
	"sync"
)

// Cursor iterates over the result of Find, a consistent snapshot taken when
// Find returned:
//
//	cur, err := coll.Find(filter, nil)
//	if err != nil { ... }
//	defer cur.Close()
//	for cur.Next() {
//		var p Person
//		if err := cur.Decode(&p); err != nil { ... }
//	}
//	if err := cur.Err(); err != nil { ... }
//
// A Cursor is meant for one goroutine at a time (its methods are
// nevertheless safe to call concurrently). The library resources are freed
// when the cursor is exhausted, fails, or is closed; a cursor that becomes
// unreachable without Close is closed by a finalizer.
type Cursor struct {
	mu  sync.Mutex
	db  *DB
	h   *cCursor
	cur []byte
	err error
}

func newCursor(db *DB, h *cCursor) *Cursor {
	c := &Cursor{db: db, h: h}
	runtime.SetFinalizer(c, (*Cursor).Close)
	return c
}

// Next advances to the next document and reports whether there is one. It
// returns false at the end of the results or on error (see Err).
func (c *Cursor) Next() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = nil
	if c.h == nil || c.err != nil {
		return false
	}
	// Hold the DB's read lock so that a concurrent DB.Close waits for the
	// step; after Close the library reports an error for the cursor.
	c.db.mu.RLock()
	rc, doc, err := capiCursorNext(c.h)
	c.db.mu.RUnlock()
	switch {
	case err != nil:
		c.err = err
	case rc == CodeRow:
		c.cur = doc
		return true
	}
	c.closeLocked()
	return false
}

// Raw returns the current document as JSON text (relaxed Extended JSON,
// "_id" first). The slice belongs to the caller and stays valid after Next.
func (c *Cursor) Raw() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// Decode stores the current document into out: a pointer to a struct, a map,
// or any value json.Unmarshal accepts, or a *json.RawMessage, *[]byte or
// *string to receive the JSON text.
func (c *Cursor) Decode(out any) error {
	c.mu.Lock()
	doc := c.cur
	c.mu.Unlock()
	if doc == nil {
		return &Error{Code: CodeError, Message: "no current document (call Next first)", Op: "decode"}
	}
	return decodeInto(doc, out)
}

// All reads every remaining document into out, a pointer to a slice (e.g.
// *[]Person or *[]map[string]any), then closes the cursor.
func (c *Cursor) All(out any) error {
	defer c.Close()
	var buf bytes.Buffer
	buf.WriteByte('[')
	n := 0
	for c.Next() {
		if n > 0 {
			buf.WriteByte(',')
		}
		buf.Write(c.Raw())
		n++
	}
	buf.WriteByte(']')
	if err := c.Err(); err != nil {
		return err
	}
	return decodeInto(buf.Bytes(), out)
}

// Err returns the error that stopped iteration, if any.
func (c *Cursor) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close releases the cursor. It is idempotent and may be called after the
// cursor's DB was closed.
func (c *Cursor) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur = nil
	return c.closeLocked()
}

func (c *Cursor) closeLocked() error {
	if c.h == nil {
		return nil
	}
	h := c.h
	c.h = nil
	runtime.SetFinalizer(c, nil)
	c.db.mu.RLock()
	defer c.db.mu.RUnlock()
	return capiCursorClose(h)
}
