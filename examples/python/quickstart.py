"""NexusLite quick start for Python: open a database, insert, update, query, print.
Run with `python quickstart.py [PATH]` after `pip install ./bindings/python`."""
import json
import sys

import nexuslite

path = sys.argv[1] if len(sys.argv) > 1 else "quickstart.db"
with nexuslite.open(path) as db:
    people = db.collection("people")
    people.insert_many([
        {"name": "ada", "age": 36, "langs": ["analytical engine"]},
        {"name": "grace", "age": 45, "langs": ["cobol"]},
        {"name": "linus", "age": 28, "langs": ["c"]},
    ])
    result = people.update_one({"name": "ada"}, {"$inc": {"age": 1}, "$push": {"langs": "python"}})
    print("updated:", result["modifiedCount"])

    for person in people.find({"age": {"$gt": 30}}, sort={"age": -1}, projection={"_id": 0}):
        print(json.dumps(person))
    print("people:", people.count())
