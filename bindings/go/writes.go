package nexus

// MongoDB-style writes that report what happened: UpdateOne, UpdateMany,
// ReplaceOne, InsertManyWith and BulkWrite (nexus_update_one ... nexus_bulk_write).

import (
	"encoding/json"
	"fmt"
)

// UpdateOptions modifies UpdateOne, UpdateMany and ReplaceOne (MongoDB's names).
type UpdateOptions struct {
	// Upsert inserts a document built from the filter and the update when
	// nothing matches.
	Upsert bool
	// ArrayFilters are the conditions of the update's $[<identifier>] paths,
	// e.g. []any{D{{"elem.grade", D{{"$gte", 85}}}}}. Not for ReplaceOne.
	ArrayFilters []any
	// Sort picks which match UpdateOne / ReplaceOne change (the first in this
	// order). Refused by UpdateMany.
	Sort any
	// Hint names an index (its name or key pattern, or {"$natural": 1}); it
	// must exist.
	Hint any
}

func (o *UpdateOptions) json() (string, error) {
	if o == nil {
		return "", nil
	}
	d := D{}
	if o.Upsert {
		d = append(d, E{"upsert", true})
	}
	if o.ArrayFilters != nil {
		d = append(d, E{"arrayFilters", o.ArrayFilters})
	}
	for _, f := range []struct {
		key string
		v   any
	}{{"sort", o.Sort}, {"hint", o.Hint}} {
		s, err := jsonArg(f.key, f.v)
		if err != nil {
			return "", err
		}
		if s != "" {
			d = append(d, E{f.key, json.RawMessage(s)})
		}
	}
	if len(d) == 0 {
		return "", nil
	}
	return jsonArg("options", d)
}

// UpdateResult is what UpdateOne, UpdateMany and ReplaceOne did.
type UpdateResult struct {
	MatchedCount  uint64 `json:"matchedCount"`
	ModifiedCount uint64 `json:"modifiedCount"`
	UpsertedCount uint64 `json:"upsertedCount"`
	// UpsertedID is the _id of the upserted document as Extended JSON (nil
	// when nothing was upserted).
	UpsertedID json.RawMessage `json:"upsertedId,omitempty"`
}

// WriteError is one failed document or operation of a batch.
type WriteError struct {
	// Index is its position in the batch.
	Index int `json:"index"`
	// Code is MongoDB's error code (11000: duplicate key).
	Code int `json:"code"`
	// ErrMsg is the library's message.
	ErrMsg string `json:"errmsg"`
}

// InsertManyOptions modifies InsertManyWith and BulkWrite.
type InsertManyOptions struct {
	// Ordered stops at the first failure (nil: true, MongoDB's default);
	// false tries every document or operation.
	Ordered *bool
}

func (o *InsertManyOptions) json() string {
	if o == nil || o.Ordered == nil {
		return ""
	}
	return fmt.Sprintf(`{"ordered":%t}`, *o.Ordered)
}

// InsertManyResult is what InsertManyWith did.
type InsertManyResult struct {
	InsertedCount uint64 `json:"insertedCount"`
	// InsertedIDs maps the position of each inserted document to its _id
	// (Extended JSON).
	InsertedIDs map[int]json.RawMessage `json:"insertedIds"`
	WriteErrors []WriteError            `json:"writeErrors"`
}

// BulkWriteResult is what BulkWrite did (MongoDB's BulkWriteResult).
type BulkWriteResult struct {
	InsertedCount uint64                  `json:"insertedCount"`
	MatchedCount  uint64                  `json:"matchedCount"`
	ModifiedCount uint64                  `json:"modifiedCount"`
	DeletedCount  uint64                  `json:"deletedCount"`
	UpsertedCount uint64                  `json:"upsertedCount"`
	UpsertedIDs   map[int]json.RawMessage `json:"upsertedIds"`
	InsertedIDs   map[int]json.RawMessage `json:"insertedIds"`
	WriteErrors   []WriteError            `json:"writeErrors"`
}

func (c *Collection) updateCall(kind int, filter, update any, opts *UpdateOptions) (*UpdateResult, error) {
	op := writeOps[kind]
	f, err := jsonArg("filter", filter)
	if err != nil {
		return nil, withOp(err, op)
	}
	u, err := requiredJSON("update", update)
	if err != nil {
		return nil, withOp(err, op)
	}
	o, err := opts.json()
	if err != nil {
		return nil, withOp(err, op)
	}
	var r UpdateResult
	err = c.db.do(func(h *cDB) error {
		raw, err := capiWrite(h, kind, c.name, f, u, o)
		if err != nil {
			return err
		}
		return decodeInto(raw, &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// UpdateOne applies update operators (or a pipeline, an array: not in this
// build) to the first document matching filter, or upserts. A document
// without operators is refused ("update document requires atomic
// operators", CodeInvalidArgument).
func (c *Collection) UpdateOne(filter, update any, opts *UpdateOptions) (*UpdateResult, error) {
	return c.updateCall(writeUpdateOne, filter, update, opts)
}

// UpdateMany applies update operators to every document matching filter, or
// upserts one.
func (c *Collection) UpdateMany(filter, update any, opts *UpdateOptions) (*UpdateResult, error) {
	return c.updateCall(writeUpdateMany, filter, update, opts)
}

// ReplaceOne replaces the body of the first document matching filter (its
// _id is kept), or upserts. A replacement with operators is refused
// ("replacement document must not contain atomic operators").
func (c *Collection) ReplaceOne(filter, replacement any, opts *UpdateOptions) (*UpdateResult, error) {
	return c.updateCall(writeReplaceOne, filter, replacement, opts)
}

// InsertManyWith inserts docs (as for InsertMany) in order. Ordered (the
// default) stops at the first failing document, keeping those inserted
// before it; unordered tries every one. When some documents failed it
// returns both the result (with WriteErrors) and an *Error with the first
// failure's code.
func (c *Collection) InsertManyWith(docs any, opts *InsertManyOptions) (*InsertManyResult, error) {
	s, err := jsonArray(docs)
	if err != nil {
		return nil, withOp(err, "insert_many_with")
	}
	var r *InsertManyResult
	err = c.db.do(func(h *cDB) error {
		raw, err := capiWrite(h, writeInsertMany, c.name, s, "", opts.json())
		if raw != nil {
			r = &InsertManyResult{}
			if derr := decodeInto(raw, r); derr != nil {
				return derr
			}
		}
		return err
	})
	return r, err
}

// BulkWrite applies write models in order: a JSON-encodable slice of
// {"insertOne": {"document"}}, {"updateOne": {"filter", "update", "upsert",
// "arrayFilters", "sort", "hint"}}, {"updateMany": ...}, {"replaceOne":
// {"filter", "replacement", ...}}, {"deleteOne": {"filter"}}, {"deleteMany":
// {"filter"}}. Each operation commits by itself outside a transaction; a
// failure keeps the operations before it. When some operations failed it
// returns both the result (with WriteErrors) and an *Error with the first
// failure's code.
func (c *Collection) BulkWrite(models any, opts *InsertManyOptions) (*BulkWriteResult, error) {
	s, err := requiredJSON("operations", models)
	if err != nil {
		return nil, withOp(err, "bulk_write")
	}
	var r *BulkWriteResult
	err = c.db.do(func(h *cDB) error {
		raw, err := capiWrite(h, writeBulk, c.name, s, "", opts.json())
		if raw != nil {
			r = &BulkWriteResult{}
			if derr := decodeInto(raw, r); derr != nil {
				return derr
			}
		}
		return err
	})
	return r, err
}
