package nexus

import (
	"errors"
	"testing"
)

// A vector index through the Go binding: creation with IndexOptions, nearest
// first with scores, a filter during the search, projection, and a wrong
// dimension refused with ErrInvalidArgument.
func TestVectorSearch(t *testing.T) {
	db, _ := openTemp(t)
	c := db.Collection("docs")
	name, err := c.CreateIndex(`{"emb":"hnsw"}`, &IndexOptions{NumDimensions: 3, Similarity: "euclidean", M: 8})
	if err != nil || name != "emb_hnsw" {
		t.Fatalf("CreateIndex: %q %v", name, err)
	}
	for i, v := range [][]float64{{0, 0, 0}, {1, 1, 1}, {5, 5, 5}, {2, 2, 2}} {
		if _, err := c.Insert(M{"_id": i, "emb": v, "odd": i%2 == 1}); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := c.VectorSearch(M{"path": "emb", "queryVector": []float64{1.1, 1.1, 1.1}, "limit": 3,
		"projection": M{"emb": 0}})
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		ID    int     `json:"_id"`
		Score float64 `json:"_score"`
		Emb   []any   `json:"emb"`
	}
	if err := cur.All(&rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].ID != 1 || rows[1].ID != 3 || rows[2].ID != 0 {
		t.Fatalf("nearest first: %+v", rows)
	}
	if rows[0].Score <= rows[1].Score || rows[0].Emb != nil {
		t.Fatalf("scores best first, vector projected out: %+v", rows)
	}
	cur, err = c.VectorSearch(`{"path":"emb","queryVector":[0,0,0],"limit":5,"filter":{"odd":true},"scoreField":"s"}`)
	if err != nil {
		t.Fatal(err)
	}
	var odd []M
	if err := cur.All(&odd); err != nil {
		t.Fatal(err)
	}
	if len(odd) != 2 || odd[0]["_id"].(float64) != 1 || odd[0]["s"] == nil {
		t.Fatalf("filtered: %+v", odd)
	}
	if _, err := c.Insert(M{"emb": []float64{1, 2}}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("wrong dimension: %v", err)
	}
	if _, err := c.VectorSearch(`{"path":"emb","queryVector":[1],"limit":1}`); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("wrong query dimension: %v", err)
	}
}

// A scalar-quantized vector index through IndexOptions.Quantization: the nearest
// document first with its exact score (the candidates are re-ranked by the
// documents' own vectors), the option listed with the index.
func TestVectorSearchScalarQuantization(t *testing.T) {
	db, _ := openTemp(t)
	c := db.Collection("docs")
	if _, err := c.CreateIndex(`{"emb":"hnsw"}`, &IndexOptions{NumDimensions: 3, Quantization: "scalar"}); err != nil {
		t.Fatal(err)
	}
	for i, v := range [][]float64{{0, 0, 0}, {1, 1, 1}, {5, 5, 5}, {2, 2, 2}} {
		if _, err := c.Insert(M{"_id": i, "emb": v}); err != nil {
			t.Fatal(err)
		}
	}
	cur, err := c.VectorSearch(`{"path":"emb","queryVector":[2,2,2],"limit":2}`)
	if err != nil {
		t.Fatal(err)
	}
	var rows []M
	if err := cur.All(&rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[0]["_id"].(float64) != 3 || rows[0]["_score"].(float64) != 1 || rows[1]["_id"].(float64) != 1 {
		t.Fatalf("nearest first, exact score: %+v", rows)
	}
	if _, err := c.CreateIndex(`{"other":"hnsw"}`, &IndexOptions{NumDimensions: 3, Quantization: "pq"}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("unknown quantization: %v", err)
	}
}
