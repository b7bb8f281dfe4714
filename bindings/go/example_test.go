package nexus_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	nexus "github.com/nexuslite/nexuslite/bindings/go"
)

// Person is the document type of the examples.
type Person struct {
	ID   string `json:"_id,omitempty"`
	Name string `json:"name"`
	Age  int    `json:"age"`
}

func Example() {
	dir, err := os.MkdirTemp("", "nexus-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := nexus.Open(filepath.Join(dir, "app.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	people := db.Collection("people")
	if _, err := people.InsertMany([]Person{
		{ID: "p1", Name: "ada", Age: 36},
		{ID: "p2", Name: "alan", Age: 41},
		{ID: "p3", Name: "grace", Age: 85},
	}); err != nil {
		log.Fatal(err)
	}

	// Filter, sort and limit; decode into structs.
	cur, err := people.Find(`{"age": {"$gt": 30}}`, &nexus.FindOptions{Sort: `{"age": -1}`, Limit: 2})
	if err != nil {
		log.Fatal(err)
	}
	for cur.Next() {
		var p Person
		if err := cur.Decode(&p); err != nil {
			log.Fatal(err)
		}
		fmt.Println(p.Name, p.Age)
	}
	if err := cur.Close(); err != nil {
		log.Fatal(err)
	}

	// Update with MongoDB operators, then read by _id.
	matched, modified, err := people.Update(nexus.M{"name": "ada"}, nexus.M{"$inc": nexus.M{"age": 1}})
	if err != nil {
		log.Fatal(err)
	}
	var ada Person
	if err := people.Get("p1", &ada); err != nil {
		log.Fatal(err)
	}
	fmt.Println(matched, modified, ada.Name, ada.Age)

	// Errors carry a code; sentinels work with errors.Is.
	err = people.Get("nobody", nil)
	fmt.Println(errors.Is(err, nexus.ErrNotFound))
	// Output:
	// grace 85
	// alan 41
	// 1 1 ada 37
	// true
}

func ExampleDB_Tx() {
	db, err := nexus.Open(nexus.Memory)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	accounts := db.Collection("accounts")
	if _, err := accounts.InsertMany(`[{"_id":"a","balance":100},{"_id":"b","balance":0}]`); err != nil {
		log.Fatal(err)
	}

	// Both updates or neither.
	err = db.Tx(func() error {
		if _, _, err := accounts.Update(`{"_id":"a"}`, `{"$inc":{"balance":-30}}`); err != nil {
			return err
		}
		_, _, err := accounts.Update(`{"_id":"b"}`, `{"$inc":{"balance":30}}`)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}

	// A failing function rolls everything back.
	_ = db.Tx(func() error {
		if _, _, err := accounts.Update(`{"_id":"a"}`, `{"$inc":{"balance":-1000}}`); err != nil {
			return err
		}
		return errors.New("insufficient funds")
	})

	var all []struct {
		ID      string `json:"_id"`
		Balance int    `json:"balance"`
	}
	cur, err := accounts.Find(nil, &nexus.FindOptions{Sort: `{"_id":1}`})
	if err != nil {
		log.Fatal(err)
	}
	if err := cur.All(&all); err != nil {
		log.Fatal(err)
	}
	fmt.Println(all)
	// Output:
	// [{a 70} {b 30}]
}

func ExampleCollection_Distinct() {
	db, err := nexus.Open(nexus.Memory)
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	c := db.Collection("pets")
	if _, err := c.InsertMany([]nexus.M{{"kind": "cat"}, {"kind": "dog"}, {"kind": "cat"}}); err != nil {
		log.Fatal(err)
	}
	n, err := c.Count(`{"kind":"cat"}`)
	if err != nil {
		log.Fatal(err)
	}
	var kinds []string
	if err := c.Distinct("kind", nil, &kinds); err != nil {
		log.Fatal(err)
	}
	fmt.Println(n, len(kinds))
	// Output:
	// 2 2
}
