// Quickstart: open a database, insert a struct, query it back.
package main

import (
	"fmt"
	"log"

	nexus "github.com/nexuslite/nexuslite/bindings/go"
)

type User struct {
	ID   string `json:"_id,omitempty"`
	Name string `json:"name"`
	Age  int    `json:"age"`
}

func main() {
	db, err := nexus.Open("quickstart.db")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	users := db.Collection("users")
	if _, err := users.Insert(User{Name: "ada", Age: 36}); err != nil {
		log.Fatal(err)
	}

	cur, err := users.Find(`{"age": {"$gte": 18}}`, &nexus.FindOptions{Sort: `{"age": -1}`, Limit: 10})
	if err != nil {
		log.Fatal(err)
	}
	defer cur.Close()
	for cur.Next() {
		var u User
		if err := cur.Decode(&u); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s is %d (id %s)\n", u.Name, u.Age, u.ID)
	}
	if err := cur.Err(); err != nil {
		log.Fatal(err)
	}
}
