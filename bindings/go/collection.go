package nexus

import (
	"encoding/json"
	"time"
)

// Collection is a handle for one collection of a DB. It is cheap, holds no
// library resources, and is safe for concurrent use.
//
// Documents, filters, updates and option objects are accepted as JSON text
// (string, []byte, json.RawMessage) or as any value encoding/json can
// marshal (structs, maps such as M, D). A nil filter matches every document.
// Documents come back as relaxed MongoDB Extended JSON with "_id" first; a
// document inserted without "_id" gets a UUID v4 string. Struct types usually
// declare the id as
//
//	ID string `json:"_id,omitempty"`
type Collection struct {
	db   *DB
	name string
}

// Name returns the collection's name.
func (c *Collection) Name() string { return c.name }

// DB returns the database the collection belongs to.
func (c *Collection) DB() *DB { return c.db }

// UpdateFlag modifies Update and Delete.
type UpdateFlag int

const (
	// Multi makes Update change every matching document instead of the first.
	Multi UpdateFlag = 1
	// Upsert makes Update insert a document built from the filter and the
	// update when nothing matches.
	Upsert UpdateFlag = 2
)

// FindOptions modifies Find and Explain. The zero value (or a nil pointer)
// means no sort, no projection, no skip and no limit.
type FindOptions struct {
	// Sort is a sort specification such as `{"age":-1}` or
	// nexus.D{{Key: "age", Value: -1}, {Key: "name", Value: 1}} (use D or
	// JSON text for several keys: Go maps do not keep key order).
	Sort any
	// Projection selects or excludes fields, e.g. `{"name":1,"_id":0}`.
	Projection any
	// Skip skips that many matching documents.
	Skip int64
	// Limit returns at most that many documents; 0 means no limit.
	Limit int64
	// Hint names or describes the index to use.
	Hint any
}

func (o *FindOptions) json() (string, error) {
	if o == nil {
		return "", nil
	}
	d := D{}
	for _, f := range []struct {
		key string
		v   any
	}{{"sort", o.Sort}, {"projection", o.Projection}, {"hint", o.Hint}} {
		s, err := jsonArg(f.key, f.v)
		if err != nil {
			return "", err
		}
		if s != "" {
			d = append(d, E{f.key, json.RawMessage(s)})
		}
	}
	if o.Skip != 0 {
		d = append(d, E{"skip", o.Skip})
	}
	if o.Limit != 0 {
		d = append(d, E{"limit", o.Limit})
	}
	if len(d) == 0 {
		return "", nil
	}
	return jsonArg("options", d)
}

// AggregateOptions modifies Aggregate (MongoDB's names; see docs/API.md).
type AggregateOptions struct {
	// Let defines variables the pipeline reads as "$$name", e.g. `{"min":5}`.
	Let any
	// AllowDiskUse: whether a blocking stage ($sort, $group, ...) past the
	// memory limit spills to temporary files in the database's directory; nil
	// leaves the default (true, as MongoDB 6.0+); false makes it fail with
	// CodeInvalidArgument instead (a *bool as in MongoDB's Go driver).
	AllowDiskUse *bool
	// MaxMemoryBytes is the memory limit of one blocking stage in bytes; 0
	// leaves the default (100 MiB). A NexusLite extension, mostly for tests.
	MaxMemoryBytes int64
	// BatchSize is accepted for compatibility; 0 leaves it out.
	BatchSize int64
	// Explain returns one document describing the plan instead of the results.
	Explain bool
}

func (o *AggregateOptions) json() (string, error) {
	if o == nil {
		return "", nil
	}
	d := D{}
	if o.Let != nil {
		s, err := jsonArg("let", o.Let)
		if err != nil {
			return "", err
		}
		if s != "" {
			d = append(d, E{"let", json.RawMessage(s)})
		}
	}
	if o.AllowDiskUse != nil {
		d = append(d, E{"allowDiskUse", *o.AllowDiskUse})
	}
	if o.MaxMemoryBytes != 0 {
		d = append(d, E{"maxMemoryBytes", o.MaxMemoryBytes})
	}
	if o.BatchSize != 0 {
		d = append(d, E{"batchSize", o.BatchSize})
	}
	if o.Explain {
		d = append(d, E{"explain", true})
	}
	if len(d) == 0 {
		return "", nil
	}
	return jsonArg("options", d)
}

// FindOneAndModifyOptions modifies FindOneAndUpdate and FindOneAndDelete.
type FindOneAndModifyOptions struct {
	// Sort picks which matching document is modified (the first in this order).
	Sort any
	// Projection shapes the returned document.
	Projection any
	// Upsert inserts a document when nothing matches (FindOneAndUpdate only).
	Upsert bool
	// ReturnAfter returns the document after the update instead of before
	// (FindOneAndUpdate only).
	ReturnAfter bool
	// ArrayFilters are the conditions of the update's $[<identifier>] paths
	// (FindOneAndUpdate only).
	ArrayFilters []any
}

func (o *FindOneAndModifyOptions) json(update bool) (string, error) {
	if o == nil {
		return "", nil
	}
	d := D{}
	for _, f := range []struct {
		key string
		v   any
	}{{"sort", o.Sort}, {"projection", o.Projection}} {
		s, err := jsonArg(f.key, f.v)
		if err != nil {
			return "", err
		}
		if s != "" {
			d = append(d, E{f.key, json.RawMessage(s)})
		}
	}
	if update && o.Upsert {
		d = append(d, E{"upsert", true})
	}
	if update && o.ReturnAfter {
		d = append(d, E{"return", "after"})
	}
	if update && o.ArrayFilters != nil {
		d = append(d, E{"arrayFilters", o.ArrayFilters})
	}
	if len(d) == 0 {
		return "", nil
	}
	return jsonArg("options", d)
}

// IndexOptions modifies CreateIndex. The zero value (or a nil pointer) means
// the library's defaults.
type IndexOptions struct {
	// Name is the index name; empty lets the library choose MongoDB's default
	// (e.g. "a_1_b_-1").
	Name string
	// Unique rejects documents whose key is already present (CodeDuplicateKey).
	Unique bool
	// Sparse leaves out documents that lack the indexed fields.
	Sparse bool
	// PartialFilterExpression indexes only the documents matching this filter,
	// e.g. `{"age":{"$gt":20}}`.
	PartialFilterExpression any
	// ExpireAfterSeconds, when set, makes a TTL index: documents expire that
	// many seconds after the date in the indexed field.
	ExpireAfterSeconds *int64
	// NumDimensions, Similarity ("euclidean", "cosine", "dotProduct"), M,
	// EfConstruction and Quantization ("scalar": 8-bit codes in the graph, the
	// candidates re-ranked by the documents' vectors) configure a vector index
	// (keys `{"field":"hnsw"}`); zero values are left out (NumDimensions is
	// required for a vector index).
	NumDimensions  int
	Similarity     string
	M              int
	EfConstruction int
	Quantization   string
}

func (o *IndexOptions) json() (string, error) {
	if o == nil {
		return "", nil
	}
	d := D{}
	if o.Name != "" {
		d = append(d, E{"name", o.Name})
	}
	if o.Unique {
		d = append(d, E{"unique", true})
	}
	if o.Sparse {
		d = append(d, E{"sparse", true})
	}
	p, err := jsonArg("partialFilterExpression", o.PartialFilterExpression)
	if err != nil {
		return "", err
	}
	if p != "" {
		d = append(d, E{"partialFilterExpression", json.RawMessage(p)})
	}
	if o.ExpireAfterSeconds != nil {
		d = append(d, E{"expireAfterSeconds", *o.ExpireAfterSeconds})
	}
	if o.NumDimensions != 0 {
		d = append(d, E{"numDimensions", o.NumDimensions})
	}
	if o.Similarity != "" {
		d = append(d, E{"similarity", o.Similarity})
	}
	if o.M != 0 {
		d = append(d, E{"m", o.M})
	}
	if o.EfConstruction != 0 {
		d = append(d, E{"efConstruction", o.EfConstruction})
	}
	if o.Quantization != "" {
		d = append(d, E{"quantization", o.Quantization})
	}
	if len(d) == 0 {
		return "", nil
	}
	return jsonArg("options", d)
}

// Insert inserts one document and returns its _id (the given one, or the
// UUID v4 string assigned when the document has none). Inserting an _id
// that exists fails with CodeDuplicateKey. A missing collection is created.
func (c *Collection) Insert(doc any) (string, error) {
	s, err := requiredJSON("document", doc)
	if err != nil {
		return "", withOp(err, "insert")
	}
	var id string
	err = c.db.do(func(h *cDB) (err error) { id, err = capiInsert(h, c.name, s); return })
	return id, err
}

// InsertBSON inserts one document given as raw BSON bytes and returns its _id.
func (c *Collection) InsertBSON(doc []byte) (string, error) {
	var id string
	err := c.db.do(func(h *cDB) (err error) { id, err = capiInsertBSON(h, c.name, doc); return })
	return id, err
}

// InsertMany inserts several documents atomically (all or none) and returns
// how many were inserted. docs is a JSON array (string, []byte,
// json.RawMessage), a slice of JSON texts ([]string, [][]byte,
// []json.RawMessage), or any slice encoding/json can marshal.
func (c *Collection) InsertMany(docs any) (uint64, error) {
	s, err := jsonArray(docs)
	if err != nil {
		return 0, withOp(err, "insert_many")
	}
	var n uint64
	err = c.db.do(func(h *cDB) (err error) { n, err = capiInsertMany(h, c.name, s); return })
	return n, err
}

// InsertTTL inserts an ephemeral document that disappears ttl after
// insertion (millisecond resolution) and returns its _id.
func (c *Collection) InsertTTL(doc any, ttl time.Duration) (string, error) {
	s, err := requiredJSON("document", doc)
	if err != nil {
		return "", withOp(err, "insert_ttl")
	}
	if ttl < 0 {
		return "", &Error{Code: CodeInvalidArgument, Message: "ttl must not be negative", Op: "insert_ttl"}
	}
	var id string
	err = c.db.do(func(h *cDB) (err error) { id, err = capiInsertTTL(h, c.name, s, uint64(ttl.Milliseconds())); return })
	return id, err
}

// Get reads the document with the given string _id into out (see
// Cursor.Decode for what out may be). A missing document fails with an error
// matching ErrNotFound. Documents whose _id is not a string (a number, an
// ObjectId) are read with FindOne, e.g. FindOne(`{"_id": 5}`, &doc).
func (c *Collection) Get(id string, out any) error {
	return c.db.do(func(h *cDB) error {
		raw, err := capiGet(h, c.name, id, false)
		if err != nil {
			return err
		}
		return decodeInto(raw, out)
	})
}

// GetMeta reads the metadata of a document (created_at, updated_at,
// version, expires_at, ephemeral, ...) into out.
func (c *Collection) GetMeta(id string, out any) error {
	return c.db.do(func(h *cDB) error {
		raw, err := capiGet(h, c.name, id, true)
		if err != nil {
			return err
		}
		return decodeInto(raw, out)
	})
}

// Replace replaces the whole document with the given _id by doc.
func (c *Collection) Replace(id string, doc any) error {
	s, err := requiredJSON("document", doc)
	if err != nil {
		return withOp(err, "replace")
	}
	return c.db.do(func(h *cDB) error { return capiReplace(h, c.name, id, s) })
}

// SetTTL makes the document expire ttl from now (millisecond resolution); a
// negative ttl makes it persistent again.
func (c *Collection) SetTTL(id string, ttl time.Duration) error {
	ms := ttl.Milliseconds()
	if ttl < 0 {
		ms = -1
	}
	return c.db.do(func(h *cDB) error { return capiSetTTL(h, c.name, id, ms) })
}

// Find returns a cursor over the documents matching filter (nil matches
// all). The cursor reads a consistent snapshot taken now. Always Close it.
func (c *Collection) Find(filter any, opts *FindOptions) (*Cursor, error) {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return nil, withOp(err, "find")
	}
	o, err := opts.json()
	if err != nil {
		return nil, withOp(err, "find")
	}
	var ch *cCursor
	if err := c.db.do(func(h *cDB) (err error) { ch, err = capiFind(h, c.name, f, o); return }); err != nil {
		return nil, err
	}
	return newCursor(c.db, ch), nil
}

// Aggregate runs an aggregation pipeline (a JSON array of stages as text,
// json.RawMessage, or any value that encodes to one, such as []D) over the
// collection and returns a cursor over the results. With a final $out or
// $merge the results are written and the cursor is empty.
func (c *Collection) Aggregate(pipeline any, opts *AggregateOptions) (*Cursor, error) {
	p, err := requiredJSON("pipeline", pipeline)
	if err != nil {
		return nil, withOp(err, "aggregate")
	}
	o, err := opts.json()
	if err != nil {
		return nil, withOp(err, "aggregate")
	}
	var ch *cCursor
	if err := c.db.do(func(h *cDB) (err error) { ch, err = capiAggregate(h, c.name, p, o); return }); err != nil {
		return nil, err
	}
	return newCursor(c.db, ch), nil
}

// VectorSearch runs a vector search over a vector index (CreateIndex with
// `{"field":"hnsw"}`): spec is MongoDB Atlas's $vectorSearch body (path,
// queryVector, limit, numCandidates, filter, exact, index) plus projection and
// scoreField (default "_score"), as JSON text or any value that encodes to it.
// The cursor returns the documents best first, each with its score.
func (c *Collection) VectorSearch(spec any) (*Cursor, error) {
	s, err := requiredJSON("spec", spec)
	if err != nil {
		return nil, withOp(err, "vector_search")
	}
	var ch *cCursor
	if err := c.db.do(func(h *cDB) (err error) { ch, err = capiVectorSearch(h, c.name, s); return }); err != nil {
		return nil, err
	}
	return newCursor(c.db, ch), nil
}

// FindOne reads the first document matching filter into out; when nothing
// matches it returns an error matching ErrNotFound.
func (c *Collection) FindOne(filter, out any) error {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return withOp(err, "find_one")
	}
	return c.db.do(func(h *cDB) error {
		raw, err := capiFindOne(h, c.name, f)
		if err != nil {
			return err
		}
		if raw == nil || string(raw) == "null" {
			return &Error{Code: CodeNotFound, Message: "no document matches the filter", Op: "find_one"}
		}
		return decodeInto(raw, out)
	})
}

// Count returns how many documents match filter (nil counts all).
func (c *Collection) Count(filter any) (uint64, error) {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return 0, withOp(err, "count")
	}
	var n uint64
	err = c.db.do(func(h *cDB) (err error) { n, err = capiCount(h, c.name, f); return })
	return n, err
}

// Update applies update (operators such as {"$set": ...}, {"$inc": ...}) to
// the first document matching filter, or to all of them with Multi; with
// Upsert it inserts a document when nothing matches. It returns how many
// documents matched and how many were actually changed.
//
//	matched, modified, err := people.Update(`{"team":"eng"}`, `{"$inc":{"level":1}}`, nexus.Multi)
func (c *Collection) Update(filter, update any, flags ...UpdateFlag) (matched, modified uint64, err error) {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return 0, 0, withOp(err, "update")
	}
	u, err := requiredJSON("update", update)
	if err != nil {
		return 0, 0, withOp(err, "update")
	}
	fl := 0
	for _, x := range flags {
		fl |= int(x)
	}
	err = c.db.do(func(h *cDB) (err error) { matched, modified, err = capiUpdate(h, c.name, f, u, fl); return })
	return matched, modified, err
}

// Delete removes the first document matching filter, or every match when
// multi is true, and returns how many were removed. A nil filter matches
// every document.
func (c *Collection) Delete(filter any, multi bool) (uint64, error) {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return 0, withOp(err, "delete")
	}
	fl := 0
	if multi {
		fl = int(Multi)
	}
	var n uint64
	err = c.db.do(func(h *cDB) (err error) { n, err = capiDelete(h, c.name, f, fl); return })
	return n, err
}

// Distinct stores the distinct values of field (dotted paths allowed) among
// the documents matching filter into out, which is typically a pointer to a
// slice such as *[]string or *[]any (or *json.RawMessage for the raw JSON
// array).
func (c *Collection) Distinct(field string, filter, out any) error {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return withOp(err, "distinct")
	}
	return c.db.do(func(h *cDB) error {
		raw, err := capiDistinct(h, c.name, field, f)
		if err != nil {
			return err
		}
		return decodeInto(raw, out)
	})
}

// FindOneAndUpdate updates the first document matching filter (in opts.Sort
// order) and reads it into out, as it was before the update unless
// opts.ReturnAfter. It fails with ErrNotFound when nothing matched and
// nothing was upserted.
func (c *Collection) FindOneAndUpdate(filter, update any, opts *FindOneAndModifyOptions, out any) error {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return withOp(err, "find_one_and_update")
	}
	u, err := requiredJSON("update", update)
	if err != nil {
		return withOp(err, "find_one_and_update")
	}
	o, err := opts.json(true)
	if err != nil {
		return withOp(err, "find_one_and_update")
	}
	return c.db.do(func(h *cDB) error {
		raw, err := capiFindOneAndUpdate(h, c.name, f, u, o)
		if err != nil {
			return err
		}
		return decodeInto(raw, out)
	})
}

// FindOneAndDelete deletes the first document matching filter (in opts.Sort
// order) and reads it into out. It fails with ErrNotFound when nothing
// matched.
func (c *Collection) FindOneAndDelete(filter any, opts *FindOneAndModifyOptions, out any) error {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return withOp(err, "find_one_and_delete")
	}
	o, err := opts.json(false)
	if err != nil {
		return withOp(err, "find_one_and_delete")
	}
	return c.db.do(func(h *cDB) error {
		raw, err := capiFindOneAndDelete(h, c.name, f, o)
		if err != nil {
			return err
		}
		return decodeInto(raw, out)
	})
}

// CreateIndex creates a secondary index on keys (e.g. `{"user.email":1}`,
// `{"a":1,"b":-1}` or a D: Go maps do not keep key order), builds it over the
// existing documents and returns its name. opts may be nil. An identical
// existing index returns its name. A unique index over duplicate data fails
// with CodeDuplicateKey and is not created; so do later writes that would
// duplicate a unique key.
func (c *Collection) CreateIndex(keys any, opts *IndexOptions) (string, error) {
	k, err := requiredJSON("keys", keys)
	if err != nil {
		return "", withOp(err, "create_index")
	}
	o, err := opts.json()
	if err != nil {
		return "", withOp(err, "create_index")
	}
	var name string
	err = c.db.do(func(h *cDB) (err error) { name, err = capiCreateIndex(h, c.name, k, o); return })
	return name, err
}

// DropIndex drops the named index: CodeNotFound when there is none,
// CodeInvalidArgument for the _id index ("_id_").
func (c *Collection) DropIndex(name string) error {
	return c.db.do(func(h *cDB) error { return capiDropIndex(h, c.name, name) })
}

// ListIndexes stores the collection's index descriptions into out: a JSON
// array of {"v":2,"key":{...},"name":...} plus each index's options, the _id
// index first. out may be a *string or *json.RawMessage (the JSON text), a
// *[]map[string]any, or a slice of structs.
func (c *Collection) ListIndexes(out any) error {
	return c.db.do(func(h *cDB) error {
		raw, err := capiListIndexes(h, c.name)
		if err != nil {
			return err
		}
		return decodeInto(raw, out)
	})
}

// Explain runs Find(filter, opts) and returns the plan in MongoDB's shape:
// "queryPlanner" ("winningPlan": FETCH over IXSCAN with "indexName", or
// COLLSCAN; "rejectedPlans") and "executionStats" ("nReturned",
// "totalKeysExamined", "totalDocsExamined").
func (c *Collection) Explain(filter any, opts *FindOptions) (map[string]any, error) {
	f, err := jsonArg("filter", filter)
	if err != nil {
		return nil, withOp(err, "explain")
	}
	o, err := opts.json()
	if err != nil {
		return nil, withOp(err, "explain")
	}
	var m map[string]any
	err = c.db.do(func(h *cDB) error {
		raw, err := capiExplain(h, c.name, f, o)
		if err != nil {
			return err
		}
		m, err = decodeObject(raw)
		return err
	})
	return m, err
}

// Import loads documents from the file at path into the collection and
// returns the library's report. options may be nil.
func (c *Collection) Import(path string, options any) (map[string]any, error) {
	return c.importExport(false, path, options)
}

// Export writes the collection's documents to the file at path and returns
// the library's report. options may be nil.
func (c *Collection) Export(path string, options any) (map[string]any, error) {
	return c.importExport(true, path, options)
}

func (c *Collection) importExport(export bool, path string, options any) (map[string]any, error) {
	o, err := jsonArg("options", options)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	err = c.db.do(func(h *cDB) error {
		raw, err := capiImportExport(h, export, c.name, path, o)
		if err != nil {
			return err
		}
		m, err = decodeObject(raw)
		return err
	})
	return m, err
}

// Drop deletes the collection (DB.DropCollection).
func (c *Collection) Drop() error { return c.db.DropCollection(c.name) }
