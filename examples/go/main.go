// Command go-demo is the Go part of the NexusLite demo: it opens the database
// named on the command line and works in the collection "go_demo".
//
//	go run . /tmp/demo.db
//
// Run it twice on the same path to see the run counter survive a restart.
package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"sort"
	"strings"
	"time"

	nexus "github.com/nexuslite/nexuslite/bindings/go"
)

// Person is a document of kind "person".
type Person struct {
	ID     string   `json:"_id,omitempty"`
	Kind   string   `json:"kind"`
	Name   string   `json:"name"`
	Age    int      `json:"age"`
	Team   string   `json:"team"`
	Skills []string `json:"skills,omitempty"`
}

// Run is the document each execution of the demo leaves behind.
type Run struct {
	ID        string `json:"_id,omitempty"`
	Kind      string `json:"kind"`
	Binding   string `json:"binding"`
	StartedAt string `json:"started_at"`
	Pid       int    `json:"pid"`
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("go-demo: ")
	if len(os.Args) != 2 {
		log.Fatalf("usage: %s DBPATH", os.Args[0])
	}
	path := os.Args[1]

	db, err := nexus.Open(path)
	if err != nil {
		log.Fatalf("open %s: %v", path, err)
	}
	defer db.Close()
	fmt.Printf("NexusLite %s via Go, database %s\n", nexus.Version(), path)

	demo := db.Collection("go_demo")

	// 1. One "run" document per execution: the count shows persistence.
	runID, err := demo.Insert(Run{Kind: "run", Binding: "go", StartedAt: time.Now().UTC().Format(time.RFC3339), Pid: os.Getpid()})
	check(err)
	runs, err := demo.Count(`{"kind": "run", "binding": "go"}`)
	check(err)
	fmt.Printf("Go demo runs seen by this database: %d (this run: %s)\n", runs, runID)

	// 2. Fresh people for this run (leftovers of earlier runs are removed first).
	removed, err := demo.Delete(`{"kind": "person"}`, true)
	check(err)
	if removed > 0 {
		fmt.Printf("Removed %d people left by the previous run\n", removed)
	}
	team := []Person{
		{Name: "ada", Age: 36, Team: "eng", Skills: []string{"math", "engines"}},
		{Name: "alan", Age: 41, Team: "eng", Skills: []string{"math", "crypto"}},
		{Name: "grace", Age: 85, Team: "navy", Skills: []string{"compilers"}},
		{Name: "linus", Age: 28, Team: "kernel", Skills: []string{"c", "git"}},
		{Name: "margaret", Age: 33, Team: "nasa", Skills: []string{"software"}},
	}
	for i := range team {
		team[i].Kind = "person"
	}
	n, err := demo.InsertMany(team)
	check(err)
	first, err := demo.Insert(Person{Kind: "person", Name: "barbara", Age: 24, Team: "eng"})
	check(err)
	fmt.Printf("Inserted %d people in one batch, and barbara as %s\n", n, first)

	// 3. Filter + sort + limit, decoded into structs.
	fmt.Println("The three oldest people aged 30 or more:")
	cur, err := demo.Find(`{"kind": "person", "age": {"$gte": 30}}`,
		&nexus.FindOptions{Sort: `{"age": -1}`, Limit: 3})
	check(err)
	for cur.Next() {
		var p Person
		check(cur.Decode(&p))
		fmt.Printf("  %-9s %3d  %-6s %s\n", p.Name, p.Age, p.Team, strings.Join(p.Skills, ", "))
	}
	check(cur.Err())
	check(cur.Close())

	// 4. Updates: one document, then every match.
	matched, modified, err := demo.Update(`{"kind": "person", "name": "ada"}`, `{"$inc": {"age": 1}}`)
	check(err)
	var ada Person
	check(demo.FindOne(`{"kind": "person", "name": "ada"}`, &ada))
	fmt.Printf("Birthday: matched %d, modified %d; ada is now %d\n", matched, modified, ada.Age)

	matched, modified, err = demo.Update(`{"kind": "person", "team": "eng"}`, nexus.M{"$set": nexus.M{"team": "engineering"}}, nexus.Multi)
	check(err)
	fmt.Printf("Renamed team eng -> engineering: matched %d, modified %d\n", matched, modified)

	// 5. Delete, count, distinct.
	deleted, err := demo.Delete(`{"kind": "person", "age": {"$lt": 25}}`, true)
	check(err)
	left, err := demo.Count(`{"kind": "person"}`)
	check(err)
	fmt.Printf("Deleted %d %s younger than 25; %d left\n", deleted, plural(deleted, "person", "people"), left)
	var teams []string
	check(demo.Distinct("team", `{"kind": "person"}`, &teams))
	sort.Strings(teams)
	fmt.Printf("Teams: %s\n", strings.Join(teams, ", "))

	// 6. A transaction that fails is rolled back as a whole.
	errAbort := errors.New("changed my mind")
	err = db.Tx(func() error {
		if _, err := demo.Delete(`{"kind": "person"}`, true); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		check(err)
	}
	left, err = demo.Count(`{"kind": "person"}`)
	check(err)
	fmt.Printf("After a rolled-back transaction that deleted everyone: %d people\n", left)

	// 7. Errors carry a code and a message.
	_, err = demo.Insert(nexus.M{"_id": runID, "kind": "run"})
	var nerr *nexus.Error
	if errors.As(err, &nerr) {
		fmt.Printf("Inserting this run's _id again fails with code %d (%s): %s\n", nerr.Code, nexus.CodeName(nerr.Code), nerr.Message)
	} else {
		log.Fatalf("duplicate _id was not rejected: %v", err)
	}
}

func plural(n uint64, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func check(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
