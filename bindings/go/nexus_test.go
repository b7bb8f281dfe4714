package nexus

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type person struct {
	ID   string   `json:"_id,omitempty"`
	Name string   `json:"name"`
	Age  int      `json:"age"`
	Team string   `json:"team,omitempty"`
	Tags []string `json:"tags,omitempty"`
}

func openTemp(t *testing.T, opts ...Option) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "test.db")
	db, err := Open(path, opts...)
	if err != nil {
		t.Fatalf("Open(%q): %v", path, err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db, path
}

type result[T any] struct {
	v   T
	err error
}

// must(f()).get(t) returns f's value or fails the test with its error.
func must[T any](v T, err error) result[T] { return result[T]{v, err} }

func (r result[T]) get(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatal(r.err)
	}
	return r.v
}

func ok(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// wantCode checks that err is an *Error with the code and a non-empty library message.
func wantCode(t *testing.T, err error, code int) *Error {
	t.Helper()
	if err == nil {
		t.Fatalf("want error with code %d (%s), got nil", code, CodeName(code))
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("want *Error, got %T: %v", err, err)
	}
	if e.Code != code {
		t.Fatalf("want code %d (%s), got %d: %v", code, CodeName(code), e.Code, err)
	}
	if strings.TrimSpace(e.Message) == "" {
		t.Errorf("error with code %d has an empty message: %#v", code, e)
	}
	return e
}

var people = []person{
	{ID: "p1", Name: "ada", Age: 36, Team: "eng", Tags: []string{"math", "code"}},
	{ID: "p2", Name: "alan", Age: 41, Team: "eng", Tags: []string{"math"}},
	{ID: "p3", Name: "grace", Age: 85, Team: "navy", Tags: []string{"code"}},
	{ID: "p4", Name: "linus", Age: 28, Team: "kernel"},
	{ID: "p5", Name: "barbara", Age: 36, Team: "eng"},
}

func seed(t *testing.T, db *DB, name string) *Collection {
	t.Helper()
	c := db.Collection(name)
	if n := must(c.InsertMany(people)).get(t); n != uint64(len(people)) {
		t.Fatalf("InsertMany inserted %d, want %d", n, len(people))
	}
	return c
}

func ids(t *testing.T, r result[*Cursor]) []string {
	t.Helper()
	cur := r.get(t)
	defer cur.Close()
	var out []string
	for cur.Next() {
		var d struct {
			ID string `json:"_id"`
		}
		ok(t, cur.Decode(&d))
		out = append(out, d.ID)
	}
	ok(t, cur.Err())
	return out
}

func eq(t *testing.T, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if string(g) != string(w) {
		t.Fatalf("got %s, want %s", g, w)
	}
}

func TestVersionAndHeader(t *testing.T) {
	v := Version()
	if !regexp.MustCompile(`^\d+\.\d+\.\d+`).MatchString(v) {
		t.Fatalf("Version() = %q", v)
	}
	maj, min, pat := capiHeaderCode(2001), capiHeaderCode(2002), capiHeaderCode(2003)
	if want := fmt.Sprintf("%d.%d.%d", maj, min, pat); !strings.HasPrefix(v, want) {
		t.Errorf("Version() = %q, header macros say %s", v, want)
	}
	if n := VersionNumber(); n != 1000000*maj+1000*min+pat {
		t.Errorf("VersionNumber() = %d, want %d", n, 1000000*maj+1000*min+pat)
	}
	for _, c := range []int{CodeOK, CodeError, CodeNotFound, CodeInvalidArgument, CodeParse, CodeDuplicateKey,
		CodeNoCollection, CodeIO, CodeCorrupt, CodeBusy, CodeReadOnly, CodeTxn, CodeCrypto, CodeUnsupported,
		CodeInternal, CodeRow, CodeDone} {
		if h := capiHeaderCode(c); h != c {
			t.Errorf("header constant for %s = %d, Go constant = %d", CodeName(c), h, c)
		}
		if capiErrstr(c) == "" {
			t.Errorf("nexus_errstr(%d) is empty", c)
		}
	}
	if capiHeaderCode(1001) != int(Multi) || capiHeaderCode(1002) != int(Upsert) {
		t.Errorf("NEXUS_MULTI/NEXUS_UPSERT = %d/%d, Go = %d/%d", capiHeaderCode(1001), capiHeaderCode(1002), Multi, Upsert)
	}
}

func TestCRUD(t *testing.T) {
	db, _ := openTemp(t)
	c := db.Collection("crud")

	// Struct without _id: the library assigns a UUID v4.
	id := must(c.Insert(person{Name: "ada", Age: 36})).get(t)
	if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
		t.Errorf("generated id %q is not a UUID v4 string", id)
	}
	var p person
	ok(t, c.Get(id, &p))
	if p.ID != id || p.Name != "ada" || p.Age != 36 {
		t.Fatalf("Get = %+v", p)
	}

	// _id comes first even when the input has it last.
	must(c.Insert(`{"z":1,"a":{"b":2},"_id":"last"}`)).get(t)
	var text string
	ok(t, c.Get("last", &text))
	if text != `{"_id":"last","z":1,"a":{"b":2}}` {
		t.Errorf("Get(last) = %s", text)
	}
	_, err := c.Delete(`{"_id":"last"}`, false)
	ok(t, err)

	// Raw JSON comes back with _id first.
	var raw json.RawMessage
	ok(t, c.Get(id, &raw))
	if !strings.HasPrefix(string(raw), `{"_id":"`+id+`"`) {
		t.Errorf("document does not start with _id: %s", raw)
	}

	// Every accepted document form, with explicit ids.
	for i, doc := range []any{
		map[string]any{"_id": "m1", "kind": "map"},
		M{"_id": "m2", "kind": "M"},
		`{"_id":"s1","kind":"string"}`,
		[]byte(`{"_id":"b1","kind":"bytes"}`),
		json.RawMessage(`{"_id":"r1","kind":"raw"}`),
		D{{"_id", "d1"}, {"kind", "D"}},
	} {
		got := must(c.Insert(doc)).get(t)
		want := []string{"m1", "m2", "s1", "b1", "r1", "d1"}[i]
		if got != want {
			t.Errorf("Insert(%T) id = %q, want %q", doc, got, want)
		}
	}
	var s string
	ok(t, c.Get("d1", &s))
	if s != `{"_id":"d1","kind":"D"}` {
		t.Errorf("Get d1 = %s", s)
	}
	var m map[string]any
	ok(t, c.Get("s1", &m))
	if m["kind"] != "string" {
		t.Errorf("Get s1 = %v", m)
	}
	if n := must(c.Count(nil)).get(t); n != 7 {
		t.Errorf("Count = %d, want 7", n)
	}

	// Replace keeps the _id.
	ok(t, c.Replace(id, person{Name: "ada lovelace", Age: 37}))
	p = person{}
	ok(t, c.Get(id, &p))
	if p.ID != id || p.Name != "ada lovelace" || p.Age != 37 {
		t.Fatalf("after Replace: %+v", p)
	}

	// Missing document.
	err = c.Get("nope", &p)
	if !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get missing: %v", err)
	}
	wantCode(t, err, CodeNotFound)

	// Delete by id.
	if n := must(c.Delete(M{"_id": id}, false)).get(t); n != 1 {
		t.Errorf("Delete = %d", n)
	}
	if err := c.Get(id, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after delete: %v", err)
	}
	if n := must(c.Count(nil)).get(t); n != 6 {
		t.Errorf("Count = %d, want 6", n)
	}
}

func TestUnicodeAndLargeDocuments(t *testing.T) {
	db, _ := openTemp(t)
	c := db.Collection("text")
	names := []string{"Zoë", "日本語", "emoji 🎉", `quote " and \ backslash`, "<tag> & amp", "tab\tnew\nline"}
	for i, n := range names {
		must(c.Insert(M{"_id": fmt.Sprint(i), "name": n})).get(t)
	}
	for i, n := range names {
		var d struct{ Name string }
		ok(t, c.Get(fmt.Sprint(i), &d))
		if d.Name != n {
			t.Errorf("round trip %q -> %q", n, d.Name)
		}
		if cnt := must(c.Count(M{"name": n})).get(t); cnt != 1 {
			t.Errorf("Count(name=%q) = %d", n, cnt)
		}
	}
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	must(c.Insert(M{"_id": "big", "blob": big})).get(t)
	var d struct{ Blob string }
	ok(t, c.Get("big", &d))
	if d.Blob != big {
		t.Errorf("1 MiB string did not round-trip (len %d)", len(d.Blob))
	}
}

func TestExtendedJSON(t *testing.T) {
	db, _ := openTemp(t)
	c := db.Collection("ext")
	must(c.Insert(`{"_id":"x","big":{"$numberLong":"9007199254740993"},"when":{"$date":"2024-01-02T03:04:05Z"},"f":1.5}`)).get(t)
	var raw string
	ok(t, c.Get("x", &raw))
	if !strings.Contains(raw, "9007199254740993") {
		t.Errorf("int64 lost precision: %s", raw)
	}
	if !strings.Contains(raw, `"$date"`) || !strings.Contains(raw, "2024-01-02T03:04:05") {
		t.Errorf("date not returned as relaxed Extended JSON: %s", raw)
	}
	if n := must(c.Count(`{"when":{"$gt":{"$date":"2023-01-01T00:00:00Z"}}}`)).get(t); n != 1 {
		t.Errorf("date comparison matched %d", n)
	}
}

func TestInsertMany(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "many")
	if n := must(c.Count(nil)).get(t); n != 5 {
		t.Fatalf("Count = %d", n)
	}
	if n := must(c.InsertMany([]string{`{"_id":"s1"}`, `{"_id":"s2"}`})).get(t); n != 2 {
		t.Errorf("InsertMany([]string) = %d", n)
	}
	if n := must(c.InsertMany(`[{"a":1},{"a":2},{"a":3}]`)).get(t); n != 3 {
		t.Errorf("InsertMany(string) = %d", n)
	}
	// Atomic: a duplicate _id inside the batch inserts nothing.
	before := must(c.Count(nil)).get(t)
	_, err := c.InsertMany([]M{{"_id": "new1"}, {"_id": "p1"}, {"_id": "new2"}})
	wantCode(t, err, CodeDuplicateKey)
	if after := must(c.Count(nil)).get(t); after != before {
		t.Errorf("failed InsertMany changed the count from %d to %d", before, after)
	}
	if err := c.Get("new1", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("document of a failed InsertMany is visible: %v", err)
	}
	_, err = c.InsertMany(`{"not":"an array"}`)
	if err == nil {
		t.Errorf("InsertMany(object) succeeded")
	}
}

func TestInsertBSON(t *testing.T) {
	db, _ := openTemp(t)
	c := db.Collection("bson")
	// {"_id": "b1", "x": int32(5)}
	var body []byte
	body = append(body, 0x02)
	body = append(body, "_id\x00"...)
	body = append(body, 3, 0, 0, 0)
	body = append(body, "b1\x00"...)
	body = append(body, 0x10)
	body = append(body, "x\x00"...)
	body = append(body, 5, 0, 0, 0)
	body = append(body, 0)
	n := len(body) + 4
	doc := append([]byte{byte(n), byte(n >> 8), 0, 0}, body...)
	id := must(c.InsertBSON(doc)).get(t)
	if id != "b1" {
		t.Errorf("InsertBSON id = %q", id)
	}
	var d struct{ X int }
	ok(t, c.Get("b1", &d))
	if d.X != 5 {
		t.Errorf("x = %d", d.X)
	}
	_, err := c.InsertBSON([]byte{1, 2, 3})
	wantCode(t, err, CodeParse)
}

func TestFilters(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "filters")
	cases := []struct {
		filter any
		want   []string
	}{
		{nil, []string{"p1", "p2", "p3", "p4", "p5"}},
		{"{}", []string{"p1", "p2", "p3", "p4", "p5"}},
		{`{"name":"ada"}`, []string{"p1"}},
		{M{"age": M{"$gt": 36}}, []string{"p2", "p3"}},
		{M{"age": M{"$gte": 36, "$lt": 50}}, []string{"p1", "p2", "p5"}},
		{M{"team": M{"$in": []string{"navy", "kernel"}}}, []string{"p3", "p4"}},
		{M{"team": M{"$ne": "eng"}}, []string{"p3", "p4"}},
		{M{"$or": []M{{"age": 28}, {"name": "grace"}}}, []string{"p3", "p4"}},
		{M{"$and": []M{{"team": "eng"}, {"age": 36}}}, []string{"p1", "p5"}},
		{M{"tags": "math"}, []string{"p1", "p2"}},
		{M{"tags": M{"$exists": false}}, []string{"p4", "p5"}},
		{M{"age": M{"$nin": []int{36, 41}}}, []string{"p3", "p4"}},
		{M{"missing.field": M{"$exists": true}}, nil},
	}
	for _, tc := range cases {
		got := ids(t, must(c.Find(tc.filter, &FindOptions{Sort: `{"_id":1}`})))
		sort.Strings(got)
		f, _ := jsonArg("", tc.filter)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Find(%s) = %v, want %v", f, got, tc.want)
		}
		if n := must(c.Count(tc.filter)).get(t); n != uint64(len(tc.want)) {
			t.Errorf("Count(%s) = %d, want %d", f, n, len(tc.want))
		}
	}
	// Nested documents and dotted paths.
	nested := db.Collection("nested")
	must(nested.InsertMany(`[{"_id":1,"a":{"b":{"c":1}}},{"_id":2,"a":{"b":{"c":2}}}]`)).get(t)
	var doc map[string]any
	ok(t, nested.FindOne(`{"a.b.c":2}`, &doc))
	if doc["_id"] != float64(2) {
		t.Errorf("dotted path matched %v", doc)
	}
	// A missing collection is an empty result for find and count.
	if got := ids(t, must(db.Collection("nothing_here").Find(nil, nil))); len(got) != 0 {
		t.Errorf("Find on missing collection = %v", got)
	}
	if n := must(db.Collection("nothing_here").Count(nil)).get(t); n != 0 {
		t.Errorf("Count on missing collection = %d", n)
	}
}

func TestFindOptions(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "opts")
	check := func(name string, opts *FindOptions, want ...string) {
		t.Helper()
		got := ids(t, must(c.Find(nil, opts)))
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
	check("sort age asc", &FindOptions{Sort: `{"age":1,"_id":1}`}, "p4", "p1", "p5", "p2", "p3")
	check("sort age desc", &FindOptions{Sort: M{"age": -1}, Limit: 2}, "p3", "p2")
	check("sort two keys (D)", &FindOptions{Sort: D{{"age", -1}, {"name", 1}}}, "p3", "p2", "p1", "p5", "p4")
	check("sort two keys desc name", &FindOptions{Sort: D{{"age", 1}, {"name", -1}}}, "p4", "p5", "p1", "p2", "p3")
	check("sort string", &FindOptions{Sort: `{"name":1}`}, "p1", "p2", "p5", "p3", "p4")
	check("limit", &FindOptions{Sort: `{"_id":1}`, Limit: 2}, "p1", "p2")
	check("skip", &FindOptions{Sort: `{"_id":1}`, Skip: 3}, "p4", "p5")
	check("skip+limit", &FindOptions{Sort: `{"_id":-1}`, Skip: 1, Limit: 2}, "p4", "p3")
	check("skip past end", &FindOptions{Skip: 10})

	cur, err := c.Find(`{"_id":"p1"}`, &FindOptions{Projection: `{"name":1}`})
	ok(t, err)
	var all []map[string]any
	ok(t, cur.All(&all))
	if len(all) != 1 || len(all[0]) != 2 || all[0]["_id"] != "p1" || all[0]["name"] != "ada" {
		t.Errorf("inclusion projection = %v", all)
	}
	cur, err = c.Find(`{"_id":"p1"}`, &FindOptions{Projection: M{"_id": 0, "tags": 0, "team": 0}})
	ok(t, err)
	all = nil
	ok(t, cur.All(&all))
	if len(all) != 1 || fmt.Sprint(all[0]) != "map[age:36 name:ada]" {
		t.Errorf("exclusion projection = %v", all)
	}
}

func TestSortDescending(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "desc")
	var got []person
	cur, err := c.Find(M{"team": "eng"}, &FindOptions{Sort: D{{"age", -1}, {"_id", 1}}, Limit: 2})
	ok(t, err)
	ok(t, cur.All(&got))
	if len(got) != 2 || got[0].Name != "alan" || got[1].Name != "ada" {
		t.Errorf("got %+v", got)
	}
}

func TestCursor(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "cur")
	cur, err := c.Find(nil, &FindOptions{Sort: `{"_id":1}`})
	ok(t, err)
	if err := cur.Decode(&person{}); err == nil {
		t.Error("Decode before Next succeeded")
	}
	if !cur.Next() {
		t.Fatal(cur.Err())
	}
	first := cur.Raw()
	if !cur.Next() {
		t.Fatal(cur.Err())
	}
	if !strings.Contains(string(first), `"p1"`) {
		t.Errorf("Raw from the first step changed: %s", first)
	}
	// The cursor reads a snapshot: later writes are invisible to it.
	must(c.Insert(person{ID: "p9", Name: "late"})).get(t)
	_, err = c.Delete(`{"_id":"p5"}`, false)
	ok(t, err)
	var rest []string
	for cur.Next() {
		var p person
		ok(t, cur.Decode(&p))
		rest = append(rest, p.ID)
	}
	ok(t, cur.Err())
	if fmt.Sprint(rest) != "[p3 p4 p5]" {
		t.Errorf("cursor after concurrent writes saw %v, want [p3 p4 p5] (snapshot)", rest)
	}
	if cur.Next() {
		t.Error("Next after the end returned true")
	}
	ok(t, cur.Close())
	ok(t, cur.Close())
	if cur.Next() {
		t.Error("Next after Close returned true")
	}
}

func TestFindOne(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "findone")
	var p person
	ok(t, c.FindOne(`{"name":"grace"}`, &p))
	if p.ID != "p3" || p.Age != 85 {
		t.Errorf("FindOne = %+v", p)
	}
	err := c.FindOne(`{"name":"nobody"}`, &p)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("FindOne no match: %v", err)
	}
}

func TestUpdate(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "upd")

	// Without Multi only the first match changes.
	m, mod, err := c.Update(`{"team":"eng"}`, `{"$set":{"flag":true}}`)
	ok(t, err)
	if m != 1 || mod != 1 {
		t.Errorf("single update matched/modified = %d/%d, want 1/1", m, mod)
	}
	if n := must(c.Count(`{"flag":true}`)).get(t); n != 1 {
		t.Errorf("single update flagged %d documents", n)
	}

	m, mod, err = c.Update(`{"team":"eng"}`, `{"$set":{"flag":true}}`, Multi)
	ok(t, err)
	if m != 3 || mod != 2 {
		t.Errorf("multi update matched/modified = %d/%d, want 3/2", m, mod)
	}
	if n := must(c.Count(`{"flag":true}`)).get(t); n != 3 {
		t.Errorf("multi update flagged %d documents", n)
	}

	m, mod, err = c.Update(M{"_id": "p1"}, M{"$inc": M{"age": 2}, "$unset": M{"tags": ""}})
	ok(t, err)
	if m != 1 || mod != 1 {
		t.Errorf("$inc matched/modified = %d/%d", m, mod)
	}
	var p person
	ok(t, c.Get("p1", &p))
	if p.Age != 38 || p.Tags != nil {
		t.Errorf("after $inc/$unset: %+v", p)
	}

	// No match, no upsert.
	m, mod, err = c.Update(`{"name":"nobody"}`, `{"$set":{"age":1}}`)
	ok(t, err)
	if m != 0 || mod != 0 {
		t.Errorf("no-match update = %d/%d", m, mod)
	}
	// Upsert inserts from the filter's equalities plus the update.
	before := must(c.Count(nil)).get(t)
	_, _, err = c.Update(`{"name":"nobody"}`, `{"$set":{"age":1}}`, Upsert)
	ok(t, err)
	if after := must(c.Count(nil)).get(t); after != before+1 {
		t.Errorf("upsert: count %d -> %d", before, after)
	}
	var up person
	ok(t, c.FindOne(`{"name":"nobody"}`, &up))
	if up.Age != 1 || up.ID == "" {
		t.Errorf("upserted %+v", up)
	}
	// Upsert with a match updates instead.
	m, _, err = c.Update(`{"name":"nobody"}`, `{"$set":{"age":2}}`, Upsert, Multi)
	ok(t, err)
	if m != 1 || must(c.Count(`{"name":"nobody"}`)).get(t) != 1 {
		t.Errorf("upsert with a match matched %d", m)
	}

	// Bad updates.
	_, _, err = c.Update(nil, `{"$bogus":{"a":1}}`)
	wantCode(t, err, CodeParse)
	_, _, err = c.Update(nil, nil)
	wantCode(t, err, CodeInvalidArgument)
}

func TestFindOneAndModify(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "foam")
	var before, after person
	ok(t, c.FindOneAndUpdate(`{"team":"eng"}`, `{"$inc":{"age":1}}`, &FindOneAndModifyOptions{Sort: `{"age":-1}`}, &before))
	if before.ID != "p2" || before.Age != 41 {
		t.Errorf("before = %+v", before)
	}
	ok(t, c.FindOneAndUpdate(`{"_id":"p2"}`, `{"$inc":{"age":1}}`, &FindOneAndModifyOptions{ReturnAfter: true}, &after))
	if after.Age != 43 {
		t.Errorf("after = %+v", after)
	}
	err := c.FindOneAndUpdate(`{"_id":"zzz"}`, `{"$set":{"a":1}}`, nil, nil)
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("FindOneAndUpdate no match: %v", err)
	}
	var del person
	ok(t, c.FindOneAndDelete(`{"team":"eng"}`, &FindOneAndModifyOptions{Sort: `{"age":1,"_id":1}`}, &del))
	if del.ID != "p1" {
		t.Errorf("FindOneAndDelete = %+v", del)
	}
	if err := c.Get("p1", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted document still there: %v", err)
	}
}

func TestDeleteAndCount(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "del")
	if n := must(c.Delete(`{"team":"eng"}`, false)).get(t); n != 1 {
		t.Errorf("Delete single = %d", n)
	}
	if n := must(c.Count(`{"team":"eng"}`)).get(t); n != 2 {
		t.Errorf("eng left = %d", n)
	}
	if n := must(c.Delete(`{"team":"eng"}`, true)).get(t); n != 2 {
		t.Errorf("Delete multi = %d", n)
	}
	if n := must(c.Delete(`{"team":"eng"}`, true)).get(t); n != 0 {
		t.Errorf("Delete nothing = %d", n)
	}
	if n := must(c.Delete(nil, true)).get(t); n != 2 {
		t.Errorf("Delete all = %d", n)
	}
	if n := must(c.Count(nil)).get(t); n != 0 {
		t.Errorf("Count after delete all = %d", n)
	}
}

func TestDistinct(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "dist")
	var teams []string
	ok(t, c.Distinct("team", nil, &teams))
	sort.Strings(teams)
	if fmt.Sprint(teams) != "[eng kernel navy]" {
		t.Errorf("Distinct(team) = %v", teams)
	}
	var ages []int
	ok(t, c.Distinct("age", `{"team":"eng"}`, &ages))
	sort.Ints(ages)
	if fmt.Sprint(ages) != "[36 41]" {
		t.Errorf("Distinct(age, eng) = %v", ages)
	}
	var tags []string
	ok(t, c.Distinct("tags", nil, &tags))
	sort.Strings(tags)
	if fmt.Sprint(tags) != "[code math]" {
		t.Errorf("Distinct(tags) (array values unwound) = %v", tags)
	}
	var raw json.RawMessage
	ok(t, c.Distinct("nope", nil, &raw))
	if string(raw) != "[]" {
		t.Errorf("Distinct(missing field) = %s", raw)
	}
}

func TestCollections(t *testing.T) {
	db, _ := openTemp(t)
	ok(t, db.CreateCollection("alpha", nil))
	wantCode(t, db.CreateCollection("alpha", nil), CodeDuplicateKey)
	if err := db.CreateCollection("_reserved", nil); err == nil {
		t.Error("creating a collection named _reserved succeeded")
	} else {
		var e *Error
		if !errors.As(err, &e) || e.Message == "" {
			t.Errorf("reserved name error: %#v", err)
		}
	}
	must(db.Collection("beta").Insert(M{"x": 1})).get(t) // insert creates
	names := must(db.ListCollections()).get(t)
	sort.Strings(names)
	if fmt.Sprint(names) != "[alpha beta]" {
		t.Errorf("ListCollections = %v", names)
	}
	ok(t, db.RenameCollection("beta", "gamma"))
	if n := must(db.Collection("gamma").Count(nil)).get(t); n != 1 {
		t.Errorf("renamed collection count = %d", n)
	}
	wantCode(t, db.RenameCollection("nope", "x"), CodeNoCollection)
	ok(t, db.Collection("alpha").Drop())
	wantCode(t, db.DropCollection("alpha"), CodeNoCollection)
	names = must(db.ListCollections()).get(t)
	if fmt.Sprint(names) != "[gamma]" {
		t.Errorf("ListCollections after rename+drop = %v", names)
	}
	// Operations other than insert/find/count on a missing collection.
	missing := db.Collection("missing")
	wantCode(t, missing.Get("x", nil), CodeNoCollection)
	_, _, err := missing.Update(nil, `{"$set":{"a":1}}`)
	wantCode(t, err, CodeNoCollection)
	_, err = missing.Delete(nil, true)
	wantCode(t, err, CodeNoCollection)
}

func TestTransactions(t *testing.T) {
	db, path := openTemp(t)
	c := db.Collection("tx")
	must(c.Insert(M{"_id": "base"})).get(t)

	ok(t, db.Begin())
	wantCode(t, db.Begin(), CodeTxn)
	must(c.Insert(M{"_id": "rolled"})).get(t)
	if err := c.Get("rolled", nil); err != nil {
		t.Errorf("own uncommitted write not visible inside the transaction: %v", err)
	}
	ok(t, db.Rollback())
	if err := c.Get("rolled", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("rolled back insert visible: %v", err)
	}

	wantCode(t, db.Commit(), CodeTxn)
	wantCode(t, db.Rollback(), CodeTxn)

	// Isolation: another connection does not see uncommitted writes.
	other, err := Open(path)
	ok(t, err)
	defer other.Close()
	ok(t, db.Begin())
	must(c.Insert(M{"_id": "committed"})).get(t)
	_, _, err = c.Update(`{"_id":"base"}`, `{"$set":{"v":1}}`)
	ok(t, err)
	if err := other.Collection("tx").Get("committed", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("uncommitted insert visible to another connection: %v", err)
	}
	ok(t, db.Commit())
	if err := other.Collection("tx").Get("committed", nil); err != nil {
		t.Errorf("committed insert not visible to another connection: %v", err)
	}

	// A read transaction keeps its snapshot while the other connection commits, and
	// refuses writes.
	ok(t, other.BeginRead())
	must(c.Insert(M{"_id": "after-snapshot"})).get(t)
	if err := other.Collection("tx").Get("after-snapshot", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("a commit after BeginRead is visible in the read transaction: %v", err)
	}
	_, err = other.Collection("tx").Insert(M{"_id": "from-reader"})
	wantCode(t, err, CodeReadOnly)
	ok(t, other.Commit())
	if err := other.Collection("tx").Get("after-snapshot", nil); err != nil {
		t.Errorf("not visible after the read transaction ended: %v", err)
	}

	// Tx helper: error rolls back, nil commits, panic rolls back and propagates.
	boom := errors.New("boom")
	err = db.Tx(func() error {
		must(c.Insert(M{"_id": "tx-err"})).get(t)
		return boom
	})
	if err != boom {
		t.Errorf("Tx returned %v", err)
	}
	if err := c.Get("tx-err", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tx error did not roll back: %v", err)
	}
	ok(t, db.Tx(func() error {
		_, err := c.InsertMany(`[{"_id":"tx1"},{"_id":"tx2"}]`)
		return err
	}))
	if n := must(c.Count(`{"_id":{"$in":["tx1","tx2"]}}`)).get(t); n != 2 {
		t.Errorf("Tx commit: %d", n)
	}
	func() {
		defer func() {
			if r := recover(); r != "panic in tx" {
				t.Errorf("recovered %v", r)
			}
		}()
		_ = db.Tx(func() error {
			must(c.Insert(M{"_id": "tx-panic"})).get(t)
			panic("panic in tx")
		})
	}()
	if err := c.Get("tx-panic", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("Tx panic did not roll back: %v", err)
	}
	// The connection is usable (no transaction left open).
	ok(t, db.Begin())
	ok(t, db.Commit())
}

func TestPersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "persist.db")
	db, err := Open(path)
	ok(t, err)
	c := db.Collection("p")
	must(c.InsertMany(people)).get(t)
	_, _, err = c.Update(`{"_id":"p1"}`, `{"$set":{"age":99}}`)
	ok(t, err)
	_, err = c.Delete(`{"_id":"p2"}`, false)
	ok(t, err)
	ok(t, db.CreateCollection("empty", nil))
	ok(t, db.Close())

	for round := 0; round < 2; round++ {
		db, err = Open(path)
		ok(t, err)
		c = db.Collection("p")
		if n := must(c.Count(nil)).get(t); n != 4 {
			t.Errorf("round %d: count after reopen = %d", round, n)
		}
		var p person
		ok(t, c.Get("p1", &p))
		if p.Age != 99 {
			t.Errorf("round %d: update lost: %+v", round, p)
		}
		if err := c.Get("p2", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("round %d: delete lost: %v", round, err)
		}
		names := must(db.ListCollections()).get(t)
		sort.Strings(names)
		if fmt.Sprint(names) != "[empty p]" {
			t.Errorf("round %d: collections = %v", round, names)
		}
		ok(t, db.Checkpoint())
		ok(t, db.Close())
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "opts.db")
	_, err := Open(path, WithCreate(false))
	if err == nil {
		t.Error("Open with create=false on a missing file succeeded")
	}
	db, err := Open(path, WithSync(SyncNormal), WithCacheCapacity(100), WithBusyTimeout(time.Second))
	ok(t, err)
	must(db.Collection("c").Insert(M{"_id": 1})).get(t)
	ok(t, db.Close())

	// The same file read through the memory map (opt-in) instead of pread.
	pr, err := Open(path, WithMmap(true))
	ok(t, err)
	if n := must(pr.Collection("c").Count(nil)).get(t); n != 1 {
		t.Errorf("count through the memory map = %d", n)
	}
	ok(t, pr.Close())
	_, err = Open(filepath.Join(dir, "z.db"), WithOption("mmap", "yes"))
	wantCode(t, err, CodeInvalidArgument)

	ro, err := Open(path, ReadOnly())
	ok(t, err)
	defer ro.Close()
	if n := must(ro.Collection("c").Count(nil)).get(t); n != 1 {
		t.Errorf("read-only count = %d", n)
	}
	_, err = ro.Collection("c").Insert(M{"_id": 2})
	wantCode(t, err, CodeReadOnly)

	_, err = Open(filepath.Join(dir, "x.db"), WithOption("no_such_option", 1))
	e := wantCode(t, err, CodeInvalidArgument)
	if !strings.Contains(e.Message, "no_such_option") {
		t.Errorf("unknown option message does not name the key: %q", e.Message)
	}
	_, err = Open(filepath.Join(dir, "y.db"), WithSync("sometimes"))
	wantCode(t, err, CodeInvalidArgument)
}

func TestOpenForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.db")
	content := []byte(strings.Repeat("this is not a NexusLite database\n", 200))
	ok(t, os.WriteFile(path, content, 0o644))
	_, err := Open(path)
	wantCode(t, err, CodeCorrupt)
	got, err := os.ReadFile(path)
	ok(t, err)
	if string(got) != string(content) {
		t.Error("opening a foreign file modified it")
	}
}

func TestBusy(t *testing.T) {
	db, path := openTemp(t)
	other, err := Open(path, WithBusyTimeout(50*time.Millisecond))
	ok(t, err)
	defer other.Close()
	ok(t, db.Begin())
	must(db.Collection("b").Insert(M{"_id": 1})).get(t)
	start := time.Now()
	_, err = other.Collection("b").Insert(M{"_id": 2})
	wantCode(t, err, CodeBusy)
	if !errors.Is(err, ErrBusy) || time.Since(start) < 40*time.Millisecond {
		t.Errorf("busy after %v: %v", time.Since(start), err)
	}
	ok(t, db.Commit())
	must(other.Collection("b").Insert(M{"_id": 2})).get(t)
}

func TestMemory(t *testing.T) {
	for _, p := range []string{"", Memory} {
		db, err := Open(p)
		ok(t, err)
		must(db.Collection("m").Insert(M{"_id": "a"})).get(t)
		if n := must(db.Collection("m").Count(nil)).get(t); n != 1 {
			t.Errorf("%q: count = %d", p, n)
		}
		ok(t, db.Close())
		db, err = Open(p)
		ok(t, err)
		if n := must(db.Collection("m").Count(nil)).get(t); n != 0 {
			t.Errorf("%q: in-memory databases are not private: count = %d", p, n)
		}
		ok(t, db.Close())
	}
}

func TestErrors(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "errs")

	_, err := c.Find(`{"age":{"$frobnicate":1}}`, nil)
	if err == nil {
		// Some engines report filter errors on the first step instead.
		cur, _ := c.Find(`{"age":{"$frobnicate":1}}`, nil)
		cur.Next()
		err = cur.Err()
		cur.Close()
		t.Errorf("unknown operator: Find returned no error (first step: %v)", err)
	} else {
		wantCode(t, err, CodeParse)
		if !errors.Is(err, ErrParse) {
			t.Error("errors.Is(err, ErrParse) = false")
		}
	}
	_, err = c.Count(`{"age":{"$frobnicate":1}}`)
	wantCode(t, err, CodeParse)
	_, err = c.Count(`{"age":`)
	wantCode(t, err, CodeParse)
	_, err = c.Insert(`{"_id":"x",`)
	wantCode(t, err, CodeParse)
	_, err = c.Insert(`[1,2]`)
	if err == nil {
		t.Error("inserting a JSON array as a document succeeded")
	}

	_, err = c.Insert(person{ID: "p1", Name: "dup"})
	e := wantCode(t, err, CodeDuplicateKey)
	if !errors.Is(err, ErrDuplicateKey) || errors.Is(err, ErrNotFound) {
		t.Error("errors.Is mismatch for duplicate key")
	}
	if !strings.Contains(e.Error(), "duplicate key") || !strings.Contains(e.Error(), "insert") {
		t.Errorf("Error() = %q", e.Error())
	}

	// Functions of subsystems not in this build yet report NEXUS_UNSUPPORTED.
	_, err = c.CreateIndex(`{"age":1}`, &IndexOptions{Unique: false})
	if err != nil {
		wantCode(t, err, CodeUnsupported)
	}
	_, err = Open(filepath.Join(t.TempDir(), "w.db"), WithStorage("wasp"))
	if err != nil {
		wantCode(t, err, CodeUnsupported)
	}

	// Invalid UTF-8 and NUL bytes are invalid arguments, never crashes.
	_, err = db.Collection("bad\xff").Insert(M{"a": 1})
	wantCode(t, err, CodeInvalidArgument)
	_, err = c.Insert("{\"a\":\"\xff\"}")
	wantCode(t, err, CodeInvalidArgument)
	_, err = db.Collection("nul\x00name").Insert(M{"a": 1})
	wantCode(t, err, CodeInvalidArgument)
	_, err = c.Insert(nil)
	wantCode(t, err, CodeInvalidArgument)
	_, err = c.Insert(func() {})
	wantCode(t, err, CodeInvalidArgument)

	// The connection works after all that.
	if n := must(c.Count(nil)).get(t); n != uint64(len(people)) {
		t.Errorf("count after errors = %d", n)
	}
}

// Error messages must belong to the failing call even when goroutines hop
// between OS threads and other goroutines fail differently at the same time.
func TestErrorMessagesPerCall(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "errmsg")
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if g%2 == 0 {
					_, err := c.Insert(M{"_id": "p1"})
					var e *Error
					if !errors.As(err, &e) || e.Code != CodeDuplicateKey || e.Message == "" {
						t.Errorf("duplicate insert: %#v", err)
						return
					}
				} else {
					_, err := c.Count(`{"a":{"$nope":1}}`)
					var e *Error
					if !errors.As(err, &e) || e.Code != CodeParse || e.Message == "" {
						t.Errorf("bad filter: %#v", err)
						return
					}
				}
				runtime.Gosched()
			}
		}(g)
	}
	wg.Wait()
}

// Secondary indexes, with MongoDB's semantics. These pass once the library
// implements indexes (until then every call fails with CodeUnsupported).
func TestIndexes(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "people")
	eq(t, must(c.CreateIndex(`{"team":1}`, nil)).get(t), "team_1")
	eq(t, must(c.CreateIndex(D{{"team", 1}, {"age", -1}}, nil)).get(t), "team_1_age_-1")
	eq(t, must(c.CreateIndex(`{"tags":1}`, &IndexOptions{Name: "by_tag", Sparse: true})).get(t),
		"by_tag")
	eq(t, must(c.CreateIndex(`{"age":1}`, &IndexOptions{
		Name: "older", PartialFilterExpression: M{"age": M{"$gt": 30}},
	})).get(t), "older")
	// MongoDB refuses sparse and partial together.
	_, err := c.CreateIndex(`{"name":1}`, &IndexOptions{
		Sparse: true, PartialFilterExpression: M{"age": M{"$gt": 30}},
	})
	wantCode(t, err, CodeInvalidArgument)
	// An identical index again: its name, nothing new.
	eq(t, must(c.CreateIndex(`{"team":1}`, &IndexOptions{})).get(t), "team_1")

	var list []struct {
		V      int            `json:"v"`
		Key    map[string]int `json:"key"`
		Name   string         `json:"name"`
		Unique bool           `json:"unique"`
		Sparse bool           `json:"sparse"`
	}
	ok(t, c.ListIndexes(&list))
	var names []string
	for _, ix := range list {
		names = append(names, ix.Name)
		if ix.V != 2 {
			t.Errorf("index %s: v = %d, want 2", ix.Name, ix.V)
		}
	}
	eq(t, names, []string{"_id_", "team_1", "team_1_age_-1", "by_tag", "older"})
	eq(t, list[0].Key, map[string]int{"_id": 1})
	eq(t, list[2].Key, map[string]int{"team": 1, "age": -1})
	if !list[3].Sparse {
		t.Errorf("by_tag is not sparse: %+v", list[3])
	}
	var text string
	ok(t, c.ListIndexes(&text))
	if !strings.HasPrefix(text, "[") || !strings.Contains(text, `"name":"team_1_age_-1"`) {
		t.Errorf("ListIndexes as text: %s", text)
	}

	// Finds give the same answers through the index.
	eq(t, ids(t, must(c.Find(`{"team":"eng"}`, &FindOptions{Sort: `{"_id":1}`}))),
		[]string{"p1", "p2", "p5"})

	ok(t, c.DropIndex("team_1"))
	text = ""
	ok(t, c.ListIndexes(&text))
	if strings.Contains(text, `"name":"team_1"`) || !strings.Contains(text, `"name":"by_tag"`) {
		t.Errorf("after DropIndex(team_1): %s", text)
	}
	err = c.DropIndex("team_1")
	wantCode(t, err, CodeNotFound)
	if !errors.Is(err, ErrNotFound) {
		t.Error("errors.Is(err, ErrNotFound) = false")
	}
	wantCode(t, c.DropIndex("_id_"), CodeInvalidArgument)
	_, err = c.CreateIndex(`{"team":`, nil)
	wantCode(t, err, CodeParse)
	_, err = c.CreateIndex(nil, nil)
	wantCode(t, err, CodeInvalidArgument)
}

func TestUniqueIndexViolation(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "people")
	eq(t, must(c.CreateIndex(`{"name":1}`, &IndexOptions{Unique: true})).get(t), "name_1")
	_, err := c.Insert(person{ID: "p6", Name: "ada"})
	wantCode(t, err, CodeDuplicateKey)
	if !errors.Is(err, ErrDuplicateKey) {
		t.Error("errors.Is(err, ErrDuplicateKey) = false")
	}
	_, err = c.InsertMany([]person{{ID: "p7", Name: "new"}, {ID: "p8", Name: "alan"}})
	wantCode(t, err, CodeDuplicateKey)
	eq(t, must(c.Count(nil)).get(t), uint64(len(people)))
	if err := c.Get("p7", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("p7 of the failed batch: %v", err)
	}
	_, _, err = c.Update(`{"_id":"p2"}`, `{"$set":{"name":"ada"}}`)
	wantCode(t, err, CodeDuplicateKey)
	eq(t, must(c.Count(`{"name":"alan"}`)).get(t), uint64(1))
	// A unique index over duplicate data is not created.
	_, err = c.CreateIndex(`{"team":1}`, &IndexOptions{Unique: true})
	wantCode(t, err, CodeDuplicateKey)
	var text string
	ok(t, c.ListIndexes(&text))
	if strings.Contains(text, "team_1") {
		t.Errorf("failed unique index listed: %s", text)
	}
}

func TestExplain(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "people")
	plan := must(c.Explain(`{"team":"navy"}`, nil)).get(t)
	if s := fmt.Sprint(plan); !strings.Contains(s, "COLLSCAN") || strings.Contains(s, "IXSCAN") {
		t.Errorf("plan without an index: %v", plan)
	}
	name := must(c.CreateIndex(`{"team":1}`, nil)).get(t)
	plan = must(c.Explain(M{"team": "navy"}, nil)).get(t)
	var p struct {
		QueryPlanner struct {
			WinningPlan struct {
				Stage      string `json:"stage"`
				InputStage struct {
					Stage     string `json:"stage"`
					IndexName string `json:"indexName"`
				} `json:"inputStage"`
			} `json:"winningPlan"`
			RejectedPlans []any `json:"rejectedPlans"`
		} `json:"queryPlanner"`
		ExecutionStats struct {
			NReturned         int `json:"nReturned"`
			TotalKeysExamined int `json:"totalKeysExamined"`
			TotalDocsExamined int `json:"totalDocsExamined"`
		} `json:"executionStats"`
	}
	b, _ := json.Marshal(plan)
	ok(t, json.Unmarshal(b, &p))
	w := p.QueryPlanner.WinningPlan
	if w.Stage != "FETCH" || w.InputStage.Stage != "IXSCAN" || w.InputStage.IndexName != name {
		t.Errorf("winning plan: %s", b)
	}
	if p.QueryPlanner.RejectedPlans == nil {
		t.Errorf("no rejectedPlans array: %s", b)
	}
	eq(t, p.ExecutionStats.NReturned, 1)
	eq(t, p.ExecutionStats.TotalDocsExamined, 1)
	// Options are Find's.
	plan = must(c.Explain(`{"team":"eng"}`, &FindOptions{Limit: 2})).get(t)
	b, _ = json.Marshal(plan)
	ok(t, json.Unmarshal(b, &p))
	eq(t, p.ExecutionStats.NReturned, 2)
}

func TestUnsupportedMessage(t *testing.T) {
	db, _ := openTemp(t)
	for name, err := range map[string]error{
		"backup": db.Backup(filepath.Join(t.TempDir(), "b.db")),
		"check": func() error {
			_, err := db.Check()
			return err
		}(),
		"export": func() error {
			_, err := db.Collection("x").Export(filepath.Join(t.TempDir(), "e.json"), nil)
			return err
		}(),
	} {
		if err == nil {
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Message == "" {
			t.Errorf("%s: error without message: %#v", name, err)
		}
		if e != nil && e.Code != CodeUnsupported {
			t.Logf("%s: %v", name, err)
		}
	}
}

func TestStatsAndMaintenance(t *testing.T) {
	db, _ := openTemp(t)
	seed(t, db, "stats")
	var p person
	ok(t, db.Collection("stats").Get("p1", &p))
	st := must(db.Stats()).get(t)
	if len(st) == 0 {
		t.Error("Stats is empty")
	}
	ok(t, db.Checkpoint())

	// Metadata: version grows with each change.
	c := db.Collection("stats")
	var m1, m2 map[string]any
	ok(t, c.GetMeta("p1", &m1))
	for _, k := range []string{"created_at", "updated_at", "version", "expires_at", "ephemeral"} {
		if _, ok := m1[k]; !ok {
			t.Errorf("GetMeta lacks %q: %v", k, m1)
		}
	}
	_, _, err := c.Update(`{"_id":"p1"}`, `{"$set":{"age":1}}`)
	ok(t, err)
	ok(t, c.GetMeta("p1", &m2))
	if v1, v2 := m1["version"].(float64), m2["version"].(float64); v2 <= v1 {
		t.Errorf("version %v -> %v after an update", v1, v2)
	}
	wantCode(t, c.GetMeta("nope", nil), CodeNotFound)

	// Compact keeps the data.
	_, err = c.Delete(`{"team":"eng"}`, true)
	ok(t, err)
	if err := db.Compact(); err != nil && !errors.Is(err, ErrUnsupported) {
		t.Errorf("Compact: %v", err)
	}
	if n := must(c.Count(nil)).get(t); n != 2 {
		t.Errorf("count after compact = %d", n)
	}
	if err := db.Configure(M{"bogus_option_xyz": 1}); err == nil {
		t.Error("Configure with an unknown key succeeded")
	}
}

func TestLogger(t *testing.T) {
	var n atomic.Int64
	err := SetLogger(func(level int, target, message string) { n.Add(1) }, LevelTrace)
	if err != nil {
		wantCode(t, err, CodeUnsupported)
		return
	}
	db, _ := openTemp(t)
	seed(t, db, "log")
	ok(t, db.Checkpoint())
	ok(t, SetLogger(nil, 0))
	t.Logf("%d log records", n.Load())
}

func TestConcurrentGoroutinesOneDB(t *testing.T) {
	db, _ := openTemp(t)
	c := db.Collection("conc")
	const G, N = 8, 100
	var wg sync.WaitGroup
	for g := 0; g < G; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < N; i++ {
				if _, err := c.Insert(M{"_id": fmt.Sprintf("g%d-%d", g, i), "g": g, "i": i}); err != nil {
					t.Error(err)
					return
				}
				if i%25 == 0 {
					if _, err := c.Count(M{"g": g}); err != nil {
						t.Error(err)
						return
					}
					cur, err := c.Find(M{"g": g}, &FindOptions{Limit: 5})
					if err != nil {
						t.Error(err)
						return
					}
					for cur.Next() {
					}
					if err := cur.Err(); err != nil {
						t.Error(err)
					}
					cur.Close()
				}
			}
		}(g)
	}
	wg.Wait()
	if n := must(c.Count(nil)).get(t); n != G*N {
		t.Fatalf("count = %d, want %d", n, G*N)
	}
	for g := 0; g < G; g++ {
		if n := must(c.Count(M{"g": g})).get(t); n != N {
			t.Errorf("goroutine %d: %d documents", g, n)
		}
	}
}

func TestConcurrentConnectionsSamePath(t *testing.T) {
	path := filepath.Join(t.TempDir(), "shared.db")
	const C, N = 4, 100
	dbs := make([]*DB, C)
	for i := range dbs {
		db, err := Open(path)
		ok(t, err)
		dbs[i] = db
	}
	var wg sync.WaitGroup
	for i, db := range dbs {
		wg.Add(1)
		go func(i int, db *DB) {
			defer wg.Done()
			c := db.Collection("shared")
			for j := 0; j < N; j++ {
				if _, err := c.Insert(M{"_id": fmt.Sprintf("c%d-%d", i, j), "conn": i}); err != nil {
					t.Error(err)
					return
				}
			}
		}(i, db)
	}
	wg.Wait()
	for i, db := range dbs {
		if n := must(db.Collection("shared").Count(nil)).get(t); n != C*N {
			t.Errorf("connection %d sees %d documents, want %d", i, n, C*N)
		}
	}
	for _, db := range dbs {
		ok(t, db.Close())
	}
	db, err := Open(path)
	ok(t, err)
	defer db.Close()
	if n := must(db.Collection("shared").Count(nil)).get(t); n != C*N {
		t.Errorf("after reopen: %d documents, want %d", n, C*N)
	}
}

func TestCloseIdempotentAndUseAfterClose(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "closed")
	ok(t, db.Close())
	ok(t, db.Close())

	checks := map[string]error{
		"insert":      func() error { _, err := c.Insert(M{"a": 1}); return err }(),
		"get":         c.Get("p1", nil),
		"find":        func() error { _, err := c.Find(nil, nil); return err }(),
		"count":       func() error { _, err := c.Count(nil); return err }(),
		"update":      func() error { _, _, err := c.Update(nil, `{"$set":{"a":1}}`); return err }(),
		"delete":      func() error { _, err := c.Delete(nil, true); return err }(),
		"distinct":    c.Distinct("a", nil, nil),
		"begin":       db.Begin(),
		"list":        func() error { _, err := db.ListCollections(); return err }(),
		"stats":       func() error { _, err := db.Stats(); return err }(),
		"checkpoint":  db.Checkpoint(),
		"create coll": db.CreateCollection("x", nil),
	}
	for name, err := range checks {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

func TestCloseRacingWithCalls(t *testing.T) {
	for round := 0; round < 5; round++ {
		db, _ := openTemp(t)
		c := db.Collection("race")
		var wg sync.WaitGroup
		var okCount, closedCount atomic.Int64
		for g := 0; g < 8; g++ {
			wg.Add(1)
			go func(g int) {
				defer wg.Done()
				for i := 0; i < 200; i++ {
					_, err := c.Insert(M{"g": g, "i": i})
					switch {
					case err == nil:
						okCount.Add(1)
					case errors.Is(err, ErrClosed):
						closedCount.Add(1)
						return
					default:
						t.Errorf("insert: %v", err)
						return
					}
				}
			}(g)
		}
		time.Sleep(time.Duration(round) * time.Millisecond)
		ok(t, db.Close())
		wg.Wait()
		_ = okCount.Load() + closedCount.Load()
	}
}

func TestCursorAfterDBClose(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "cursor_close")

	unread, err := c.Find(nil, nil)
	ok(t, err)
	started, err := c.Find(nil, &FindOptions{Sort: `{"_id":1}`})
	ok(t, err)
	if !started.Next() {
		t.Fatal(started.Err())
	}
	ok(t, db.Close())

	for name, cur := range map[string]*Cursor{"unread": unread, "started": started} {
		if cur.Next() {
			t.Errorf("%s cursor: Next after DB.Close returned a document: %s", name, cur.Raw())
		}
		if cur.Err() == nil {
			t.Errorf("%s cursor: no error after DB.Close", name)
		} else {
			wantCode(t, cur.Err(), CodeError)
		}
		ok(t, cur.Close())
		ok(t, cur.Close())
	}

	// A cursor that is never closed, and a DB that is never closed, are
	// cleaned up by finalizers without crashing.
	for i := 0; i < 20; i++ {
		db, err := Open(Memory)
		ok(t, err)
		must(db.Collection("leak").Insert(M{"i": i})).get(t)
		_, err = db.Collection("leak").Find(nil, nil)
		ok(t, err)
	}
	for i := 0; i < 3; i++ {
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestJSONHelpers(t *testing.T) {
	s, err := jsonArg("x", D{{"b", 1}, {"a", M{"$in": []int{1, 2}}}, {"<", "&"}})
	ok(t, err)
	if s != `{"b":1,"a":{"$in":[1,2]},"<":"&"}` {
		t.Errorf("D = %s", s)
	}
	if s, _ := jsonArg("x", map[string]any(nil)); s != "" {
		t.Errorf("nil map = %q", s)
	}
	if s, _ := jsonArray([]string{`{"a":1}`, `{"b":2}`}); s != `[{"a":1},{"b":2}]` {
		t.Errorf("[]string = %s", s)
	}
	if s, _ := jsonArray([]M(nil)); s != "[]" {
		t.Errorf("nil slice = %s", s)
	}
	o, _ := (&FindOptions{Sort: `{"a":1}`, Limit: 3}).json()
	if o != `{"sort":{"a":1},"limit":3}` {
		t.Errorf("FindOptions = %s", o)
	}
	if o, _ := (*FindOptions)(nil).json(); o != "" {
		t.Errorf("nil FindOptions = %q", o)
	}
	e := &Error{Code: CodeNotFound, Message: "m", Op: "get"}
	if e.Error() != "nexus: get: not found: m" || !errors.Is(e, ErrNotFound) || errors.Is(e, ErrClosed) {
		t.Errorf("Error = %q", e.Error())
	}
	e = &Error{Code: CodeDuplicateKey, Message: "duplicate key: _id 1", Op: "insert"}
	if e.Error() != "nexus: insert: duplicate key: _id 1" {
		t.Errorf("Error = %q", e.Error())
	}
	if errors.Is(ErrClosed, ErrNotFound) || !errors.Is(fmt.Errorf("wrapped: %w", ErrClosed), ErrClosed) {
		t.Error("ErrClosed matching")
	}
}

// TestTTLCacheAndConfiguration exercises the Redis-like layer through the binding: TTL
// inserts, SetTTL in both directions, expiry hiding documents, PurgeExpired, cache stats,
// and run-time configuration.
func TestTTLCacheAndConfiguration(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "ttl.db"), WithOption("sweeper_interval_ms", 0))
	ok(t, err)
	defer db.Close()
	c := db.Collection("sessions")

	short := must(c.InsertTTL(M{"user": "ada"}, 50*time.Millisecond)).get(t)
	long := must(c.InsertTTL(M{"user": "alan"}, time.Hour)).get(t)
	kept := must(c.InsertTTL(M{"user": "grace"}, 50*time.Millisecond)).get(t)
	ok(t, c.SetTTL(kept, -1)) // persistent again

	var meta map[string]any
	ok(t, c.GetMeta(long, &meta))
	if meta["ephemeral"] != true || meta["expires_at"] == nil {
		t.Errorf("metadata of a TTL document: %v", meta)
	}
	var doc M
	ok(t, c.Get(short, &doc))
	time.Sleep(80 * time.Millisecond)
	wantCode(t, c.Get(short, &doc), CodeNotFound)
	if n := must(c.Count(nil)).get(t); n != 2 {
		t.Errorf("count after expiry = %d, want 2", n)
	}
	if n := must(db.PurgeExpired()).get(t); n != 1 {
		t.Errorf("PurgeExpired = %d, want 1", n)
	}
	ok(t, c.GetMeta(kept, &meta))
	if meta["ephemeral"] != false || meta["expires_at"] != nil {
		t.Errorf("SetTTL(-1) left %v", meta)
	}

	st := must(db.Stats()).get(t)
	cache, _ := st["cache"].(map[string]any)
	if cache == nil || cache["hits"] == nil || cache["misses"].(float64) < 1 || cache["expired_reads"].(float64) != 1 {
		t.Errorf("cache stats: %v", st["cache"])
	}
	ok(t, db.Configure(M{"cache_capacity": 1, "eviction": "lru-only"}))
	st = must(db.Stats()).get(t)
	if st["cache"].(map[string]any)["eviction"] != "lru-only" {
		t.Errorf("Configure did not apply: %v", st["cache"])
	}
	wantCode(t, db.Configure(M{"eviction": "fifo"}), CodeInvalidArgument)
}

func TestAggregate(t *testing.T) {
	db, _ := openTemp(t)
	c := seed(t, db, "agg")
	cur, err := c.Aggregate([]D{
		{{"$match", M{"age": M{"$gte": 30}}}},
		{{"$group", D{{"_id", nil}, {"n", M{"$sum": 1}}, {"oldest", M{"$max": "$age"}}}}},
	}, nil)
	ok(t, err)
	var rows []map[string]any
	ok(t, cur.All(&rows))
	if len(rows) != 1 || rows[0]["oldest"] != float64(85) || rows[0]["n"] != float64(4) {
		t.Errorf("group = %v", rows)
	}
	got := ids(t, must(c.Aggregate(`[{"$match":{"$expr":{"$lt":["$age","$$max"]}}},{"$sort":{"_id":1}}]`,
		&AggregateOptions{Let: M{"max": 40}, BatchSize: 10})))
	if fmt.Sprint(got) != "[p1 p4 p5]" {
		t.Errorf("let: got %v", got)
	}
	_, err = c.Aggregate(`[{"$densify":{}}]`, nil)
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeUnsupported || !strings.Contains(e.Message, "$densify") {
		t.Errorf("unknown stage: %v", err)
	}
	if _, err := c.Aggregate(nil, nil); err == nil {
		t.Errorf("a nil pipeline was accepted")
	}
}
