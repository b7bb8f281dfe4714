package nexus

// The query-language conformance suite (tests/conformance/*.json, format in
// tests/conformance/README.md) through the Go binding. Every case whose
// options the binding's option structs can express is run on a fresh
// in-memory database; expected and actual values are compared after both
// pass through the library's JSON writer (a scratch collection), so
// formatting does not matter while values, field order and document order do.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

type confGroup struct {
	Group       string            `json:"group"`
	Docs        []json.RawMessage `json:"docs"`
	Collections []struct {
		Name string            `json:"name"`
		Docs []json.RawMessage `json:"docs"`
	} `json:"collections"`
	Cases []json.RawMessage `json:"cases"`
}

type confCase struct {
	Name           string            `json:"name"`
	Op             string            `json:"op"`
	Filter         json.RawMessage   `json:"filter"`
	Options        json.RawMessage   `json:"options"`
	Update         json.RawMessage   `json:"update"`
	Pipeline       json.RawMessage   `json:"pipeline"`
	AfterColl      string            `json:"after_collection"`
	Replacement    json.RawMessage   `json:"replacement"`
	Documents      json.RawMessage   `json:"documents"`
	Operations     json.RawMessage   `json:"operations"`
	Field          *string           `json:"field"`
	Multi          bool              `json:"multi"`
	Upsert         bool              `json:"upsert"`
	Expect         json.RawMessage   `json:"expect"`
	ExpectIDs      []json.RawMessage `json:"expect_ids"`
	Error          string            `json:"error"`
	Message        string            `json:"message"`
	After          json.RawMessage   `json:"after"`
	AfterIgnoresID bool              `json:"after_ignores_id"`
	Check          *struct {
		Filter json.RawMessage `json:"filter"`
		Count  uint64          `json:"count"`
	} `json:"check"`
}

var confCodes = map[string]int{
	"NEXUS_ERROR":            CodeError,
	"NEXUS_NOT_FOUND":        CodeNotFound,
	"NEXUS_INVALID_ARGUMENT": CodeInvalidArgument,
	"NEXUS_PARSE":            CodeParse,
	"NEXUS_DUPLICATE_KEY":    CodeDuplicateKey,
	"NEXUS_NO_COLLECTION":    CodeNoCollection,
	"NEXUS_UNSUPPORTED":      CodeUnsupported,
}

// errSkip marks a case whose options the Go option structs cannot express.
var errSkip = errors.New("options not expressible through the Go option structs")

// findOptions maps a case's find options onto FindOptions.
func findOptions(raw json.RawMessage, idsOnly bool) (*FindOptions, error) {
	o := &FindOptions{}
	if len(raw) > 0 {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, err
		}
		for k, v := range m {
			switch k {
			case "sort":
				o.Sort = v
			case "projection":
				o.Projection = v
			case "skip", "limit":
				var n int64
				if err := json.Unmarshal(v, &n); err != nil {
					return nil, err
				}
				if k == "skip" {
					o.Skip = n
				} else {
					o.Limit = n
				}
			default:
				return nil, errSkip
			}
		}
	}
	if idsOnly {
		o.Projection = `{"_id":1}`
	}
	return o, nil
}

// aggregateOptions maps a case's aggregate options onto AggregateOptions.
func aggregateOptions(raw json.RawMessage) (*AggregateOptions, error) {
	o := &AggregateOptions{}
	if len(raw) == 0 {
		return o, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		switch k {
		case "let":
			o.Let = v
		case "allowDiskUse":
			allow := string(v) == "true"
			o.AllowDiskUse = &allow
		case "maxMemoryBytes":
			if err := json.Unmarshal(v, &o.MaxMemoryBytes); err != nil {
				return nil, err
			}
			if o.MaxMemoryBytes == 0 {
				return nil, errSkip // 0 is "the default" in the Go struct
			}
		case "batchSize":
			if err := json.Unmarshal(v, &o.BatchSize); err != nil {
				return nil, err
			}
		default:
			return nil, errSkip
		}
	}
	return o, nil
}

// modifyOptions maps find_one_and_* options onto FindOneAndModifyOptions.
func modifyOptions(raw json.RawMessage) (*FindOneAndModifyOptions, error) {
	o := &FindOneAndModifyOptions{}
	if len(raw) == 0 {
		return o, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		switch k {
		case "sort":
			o.Sort = v
		case "projection":
			o.Projection = v
		case "upsert":
			o.Upsert = string(v) == "true"
		case "arrayFilters":
			if err := json.Unmarshal(v, &o.ArrayFilters); err != nil {
				return nil, errSkip
			}
		case "return":
			switch string(v) {
			case `"after"`:
				o.ReturnAfter = true
			case `"before"`:
			default:
				return nil, errSkip
			}
		default:
			return nil, errSkip
		}
	}
	return o, nil
}

// updateOptions maps update_one / update_many / replace_one options onto UpdateOptions.
func updateOptions(raw json.RawMessage) (*UpdateOptions, error) {
	o := &UpdateOptions{}
	if len(raw) == 0 {
		return o, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		switch k {
		case "upsert":
			switch string(v) {
			case "true":
				o.Upsert = true
			case "false":
			default:
				return nil, errSkip
			}
		case "arrayFilters":
			var fs []json.RawMessage
			if err := json.Unmarshal(v, &fs); err != nil {
				return nil, errSkip
			}
			o.ArrayFilters = []any{}
			for _, f := range fs {
				o.ArrayFilters = append(o.ArrayFilters, f)
			}
		case "sort":
			o.Sort = v
		case "hint":
			o.Hint = v
		default:
			return nil, errSkip
		}
	}
	return o, nil
}

// batchOptions maps insert_many / bulk_write options onto InsertManyOptions.
func batchOptions(raw json.RawMessage) (*InsertManyOptions, error) {
	o := &InsertManyOptions{}
	if len(raw) == 0 {
		return o, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	for k, v := range m {
		var b bool
		if k != "ordered" || json.Unmarshal(v, &b) != nil {
			return nil, errSkip
		}
		o.Ordered = &b
	}
	return o, nil
}

// comparable re-encodes a write result for comparison: writeErrors keep their
// index and code (messages are the library's own).
func comparable(v any) (json.RawMessage, error) {
	type werr struct {
		Index int `json:"index"`
		Code  int `json:"code"`
	}
	strip := func(es []WriteError) []werr {
		out := []werr{}
		for _, e := range es {
			out = append(out, werr{e.Index, e.Code})
		}
		return out
	}
	switch r := v.(type) {
	case *InsertManyResult:
		return json.Marshal(struct {
			InsertedCount uint64                  `json:"insertedCount"`
			InsertedIDs   map[int]json.RawMessage `json:"insertedIds"`
			WriteErrors   []werr                  `json:"writeErrors"`
		}{r.InsertedCount, r.InsertedIDs, strip(r.WriteErrors)})
	case *BulkWriteResult:
		return json.Marshal(struct {
			InsertedCount uint64                  `json:"insertedCount"`
			MatchedCount  uint64                  `json:"matchedCount"`
			ModifiedCount uint64                  `json:"modifiedCount"`
			DeletedCount  uint64                  `json:"deletedCount"`
			UpsertedCount uint64                  `json:"upsertedCount"`
			UpsertedIDs   map[int]json.RawMessage `json:"upsertedIds"`
			InsertedIDs   map[int]json.RawMessage `json:"insertedIds"`
			WriteErrors   []werr                  `json:"writeErrors"`
		}{r.InsertedCount, r.MatchedCount, r.ModifiedCount, r.DeletedCount, r.UpsertedCount,
			r.UpsertedIDs, r.InsertedIDs, strip(r.WriteErrors)})
	}
	return json.Marshal(v)
}

// expectsWriteErrors tells whether a batch case expects some writes to fail.
func expectsWriteErrors(expect json.RawMessage) bool {
	var e struct {
		WriteErrors []json.RawMessage `json:"writeErrors"`
	}
	return json.Unmarshal(expect, &e) == nil && len(e.WriteErrors) > 0
}

// normalizer renders JSON values through the library's own writer.
type normalizer struct{ c *Collection }

func (n normalizer) norm(t *testing.T, v json.RawMessage) string {
	t.Helper()
	doc := append(append([]byte(`{"_id":"k","v":`), v...), '}')
	if _, err := n.c.Insert(json.RawMessage(doc)); err != nil {
		t.Fatalf("normalize %s: %v", v, err)
	}
	var out json.RawMessage
	if err := n.c.Get("k", &out); err != nil {
		t.Fatalf("normalize %s: %v", v, err)
	}
	if _, err := n.c.Delete(`{"_id":"k"}`, false); err != nil {
		t.Fatalf("normalize: %v", err)
	}
	return string(out)
}

func rawArray(items []json.RawMessage) json.RawMessage {
	return json.RawMessage("[" + string(bytes.Join(bytesOf(items), []byte(","))) + "]")
}

func bytesOf(items []json.RawMessage) [][]byte {
	out := make([][]byte, len(items))
	for i, it := range items {
		out[i] = it
	}
	return out
}

func readAll(cur *Cursor) ([]json.RawMessage, error) {
	defer cur.Close()
	var docs []json.RawMessage
	for cur.Next() {
		var d json.RawMessage
		if err := cur.Decode(&d); err != nil {
			return nil, err
		}
		docs = append(docs, d)
	}
	return docs, cur.Err()
}

// runConfCase runs one case; it returns errSkip, or a non-nil error describing a failure.
func runConfCase(t *testing.T, n normalizer, g confGroup, tc confCase) error {
	docs := g.Docs
	db, err := Open(Memory)
	if err != nil {
		return err
	}
	defer db.Close()
	c := db.Collection("c")
	if len(docs) > 0 {
		if _, err := c.InsertMany(docs); err != nil {
			return errors.New("loading docs: " + err.Error())
		}
	}
	for _, other := range g.Collections {
		if len(other.Docs) == 0 {
			continue
		}
		if _, err := db.Collection(other.Name).InsertMany(other.Docs); err != nil {
			return errors.New("loading collection " + other.Name + ": " + err.Error())
		}
	}
	filter := any(nil)
	if len(tc.Filter) > 0 {
		filter = tc.Filter
	}
	var got json.RawMessage
	var n1, n2 uint64
	switch op := tc.Op; op {
	case "", "find":
		o, err := findOptions(tc.Options, tc.ExpectIDs != nil)
		if err != nil {
			return err
		}
		cur, ferr := c.Find(filter, o)
		err = ferr
		if err == nil {
			var rows []json.RawMessage
			rows, err = readAll(cur)
			got = rawArray(rows)
		}
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
	case "count":
		n1, err = c.Count(filter)
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
	case "distinct":
		err = c.Distinct(*tc.Field, filter, &got)
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
	case "update":
		var flags []UpdateFlag
		if tc.Multi {
			flags = append(flags, Multi)
		}
		if tc.Upsert {
			flags = append(flags, Upsert)
		}
		n1, n2, err = c.Update(filter, tc.Update, flags...)
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
	case "delete":
		n1, err = c.Delete(filter, tc.Multi)
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
	case "find_one_and_update", "find_one_and_delete":
		o, oerr := modifyOptions(tc.Options)
		if oerr != nil {
			return oerr
		}
		if op == "find_one_and_update" {
			err = c.FindOneAndUpdate(filter, tc.Update, o, &got)
		} else {
			err = c.FindOneAndDelete(filter, o, &got)
		}
		if errors.Is(err, ErrNotFound) {
			err, got = nil, json.RawMessage("null")
		}
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
	case "aggregate":
		o, oerr := aggregateOptions(tc.Options)
		if oerr != nil {
			return oerr
		}
		cur, aerr := c.Aggregate(tc.Pipeline, o)
		err = aerr
		if err == nil {
			var rows []json.RawMessage
			rows, err = readAll(cur)
			got = rawArray(rows)
		}
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
	case "update_one", "update_many", "replace_one":
		o, oerr := updateOptions(tc.Options)
		if oerr != nil {
			return oerr
		}
		var r *UpdateResult
		switch op {
		case "update_one":
			r, err = c.UpdateOne(filter, tc.Update, o)
		case "update_many":
			r, err = c.UpdateMany(filter, tc.Update, o)
		default:
			r, err = c.ReplaceOne(filter, tc.Replacement, o)
		}
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
		if got, err = comparable(r); err != nil {
			return err
		}
	case "insert_many", "bulk_write":
		o, oerr := batchOptions(tc.Options)
		if oerr != nil {
			return oerr
		}
		var r any
		if op == "insert_many" {
			var ir *InsertManyResult
			ir, err = c.InsertManyWith(tc.Documents, o)
			if ir != nil {
				r = ir
			}
		} else {
			var br *BulkWriteResult
			br, err = c.BulkWrite(tc.Operations, o)
			if br != nil {
				r = br
			}
		}
		if tc.Error == "" && expectsWriteErrors(tc.Expect) {
			// Some writes failed: an error, and the result anyway.
			if err == nil {
				return errors.New("expected an error for the write errors, got none")
			}
			err = nil
		}
		if e := checkErr(tc, err); e != nil || tc.Error != "" {
			return afterOrErr(t, n, c, tc, e)
		}
		if r == nil {
			return errors.New("no result")
		}
		if got, err = comparable(r); err != nil {
			return err
		}
	default:
		return errors.New("unknown op " + op)
	}

	switch {
	case tc.ExpectIDs != nil:
		want := make([]json.RawMessage, len(tc.ExpectIDs))
		for i, id := range tc.ExpectIDs {
			want[i] = json.RawMessage(`{"_id":` + string(id) + `}`)
		}
		if w, g := n.norm(t, rawArray(want)), n.norm(t, got); w != g {
			return errors.New("ids: expected " + w + "\n          got      " + g)
		}
	case len(tc.Expect) > 0 && (tc.Op == "count" || tc.Op == "delete"):
		var want uint64
		if err := json.Unmarshal(tc.Expect, &want); err != nil {
			return err
		}
		if n1 != want {
			return errors.New("expected " + string(tc.Expect) + ", got " + itoa(n1))
		}
	case len(tc.Expect) > 0 && tc.Op == "update":
		var want struct{ Matched, Modified uint64 }
		if err := json.Unmarshal(tc.Expect, &want); err != nil {
			return err
		}
		if n1 != want.Matched || n2 != want.Modified {
			return errors.New("expected matched/modified " + itoa(want.Matched) + "/" + itoa(want.Modified) +
				", got " + itoa(n1) + "/" + itoa(n2))
		}
	case len(tc.Expect) > 0:
		if w, g := n.norm(t, tc.Expect), n.norm(t, got); w != g {
			return errors.New("expected " + w + "\n          got      " + g)
		}
	}
	return afterOrErr(t, n, c, tc, nil)
}

func itoa(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkErr compares an operation's error with the case's expectation.
func checkErr(tc confCase, err error) error {
	if tc.Error == "" {
		if err != nil {
			return errors.New("failed: " + err.Error())
		}
		return nil
	}
	var e *Error
	if err == nil || !errors.As(err, &e) {
		return errors.New("expected " + tc.Error + ", got success")
	}
	if want, ok := confCodes[tc.Error]; !ok || e.Code != want {
		return errors.New("expected " + tc.Error + ", got " + err.Error())
	}
	if tc.Message != "" && !strings.Contains(e.Message, tc.Message) {
		return errors.New("message " + e.Message + " lacks " + tc.Message)
	}
	return nil
}

// afterOrErr returns e, or else checks the collection's contents and counts.
func afterOrErr(t *testing.T, n normalizer, c *Collection, tc confCase, e error) error {
	if e != nil {
		return e
	}
	if len(tc.After) > 0 {
		if tc.AfterColl != "" {
			c = c.db.Collection(tc.AfterColl)
		}
		o := &FindOptions{}
		if tc.AfterIgnoresID {
			o.Projection = `{"_id":0}`
		}
		cur, err := c.Find(nil, o)
		if err != nil {
			return err
		}
		rows, err := readAll(cur)
		if err != nil {
			return err
		}
		if w, g := n.norm(t, tc.After), n.norm(t, rawArray(rows)); w != g {
			return errors.New("collection afterwards: expected " + w + "\n          got      " + g)
		}
	}
	if tc.Check != nil {
		got, err := c.Count(tc.Check.Filter)
		if err != nil {
			return err
		}
		if got != tc.Check.Count {
			return errors.New("check " + string(tc.Check.Filter) + ": expected " + itoa(tc.Check.Count) + ", got " + itoa(got))
		}
	}
	return nil
}

func TestConformanceSuite(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "tests", "conformance", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no conformance files found (%v)", err)
	}
	sort.Strings(files)
	scratch, err := Open(Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer scratch.Close()
	n := normalizer{scratch.Collection("norm")}
	passed, skipped, failed := 0, 0, 0
	for _, f := range files {
		text, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var groups []confGroup
		if err := json.Unmarshal(text, &groups); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, g := range groups {
			for _, raw := range g.Cases {
				var tc confCase
				if err := json.Unmarshal(raw, &tc); err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				switch err := runConfCase(t, n, g, tc); {
				case errors.Is(err, errSkip):
					skipped++
				case err != nil:
					failed++
					t.Errorf("%s / %s / %s:\n          %v", filepath.Base(f), g.Group, tc.Name, err)
				default:
					passed++
				}
			}
		}
	}
	t.Logf("conformance (Go binding): %d passed, %d failed, %d skipped (options the Go structs cannot express)", passed, failed, skipped)
	if passed < 300 {
		t.Errorf("only %d conformance cases ran through the Go binding", passed)
	}
}
