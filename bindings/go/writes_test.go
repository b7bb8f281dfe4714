package nexus

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestUpdateOneResultsAndArrayFilters(t *testing.T) {
	db, err := Open(Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := db.Collection("s")
	if _, err := c.InsertMany(`[{"_id":1,"grades":[95,102,90]},{"_id":2,"grades":[100]}]`); err != nil {
		t.Fatal(err)
	}
	r, err := c.UpdateMany(nil, D{{"$set", D{{"grades.$[g]", 100}}}},
		&UpdateOptions{ArrayFilters: []any{D{{"g", D{{"$gte", 100}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if r.MatchedCount != 2 || r.ModifiedCount != 1 || r.UpsertedCount != 0 || r.UpsertedID != nil {
		t.Fatalf("update_many: %+v", r)
	}
	if n, _ := c.Count(`{"grades":[95,100,90]}`); n != 1 {
		t.Fatalf("the filtered element was not capped")
	}
	r, err = c.UpdateOne(`{"_id":"k"}`, `{"$inc":{"n":1}}`, &UpdateOptions{Upsert: true})
	if err != nil || r.UpsertedCount != 1 || string(r.UpsertedID) != `"k"` {
		t.Fatalf("upsert: %+v %v", r, err)
	}
	r, err = c.ReplaceOne(`{"_id":{"$type":"number"}}`, `{"top":true}`, &UpdateOptions{Sort: `{"_id":-1}`})
	if err != nil || r.MatchedCount != 1 {
		t.Fatalf("replace_one: %+v %v", r, err)
	}
	if n, _ := c.Count(`{"_id":2,"top":true}`); n != 1 {
		t.Fatalf("sort did not pick _id 2")
	}
	var e *Error
	if _, err := c.UpdateOne(`{"_id":1}`, `{"x":22}`, nil); !errors.As(err, &e) || e.Code != CodeInvalidArgument {
		t.Fatalf("a replacement given to UpdateOne: %v", err)
	}
	if _, err := c.ReplaceOne(`{"_id":1}`, `{"$set":{"x":1}}`, nil); !errors.As(err, &e) || e.Code != CodeInvalidArgument {
		t.Fatalf("operators given to ReplaceOne: %v", err)
	}
}

func TestInsertManyWithAndBulkWrite(t *testing.T) {
	db, err := Open(Memory)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	c := db.Collection("b")
	if _, err := c.InsertMany(`[{"_id":1}]`); err != nil {
		t.Fatal(err)
	}
	unordered := false
	r, err := c.InsertManyWith(`[{"_id":2},{"_id":1},{"_id":3}]`, &InsertManyOptions{Ordered: &unordered})
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeDuplicateKey {
		t.Fatalf("expected a duplicate key error, got %v", err)
	}
	if r == nil || r.InsertedCount != 2 || len(r.WriteErrors) != 1 || r.WriteErrors[0].Index != 1 ||
		r.WriteErrors[0].Code != 11000 || string(r.InsertedIDs[2]) != "3" {
		t.Fatalf("partial result: %+v", r)
	}
	b, err := c.BulkWrite([]any{
		D{{"insertOne", D{{"document", D{{"_id", 9}}}}}},
		D{{"updateOne", D{{"filter", D{{"_id", 10}}}, {"update", D{{"$set", D{{"x", 1}}}}}, {"upsert", true}}}},
		D{{"deleteMany", D{{"filter", json.RawMessage(`{"_id":{"$lt":3}}`)}}}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.InsertedCount != 1 || b.UpsertedCount != 1 || string(b.UpsertedIDs[1]) != "10" || b.DeletedCount != 2 {
		t.Fatalf("bulk write: %+v", b)
	}
	if n, _ := c.Count(nil); n != 3 {
		t.Fatalf("count after the bulk write: %d", n)
	}
}
