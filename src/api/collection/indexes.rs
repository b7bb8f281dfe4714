//! [`Collection`]'s index operations: create, drop, list, and `explain`.

use super::{check_collection_name, Collection};
use crate::document::{check_nesting, MAX_QUERY_NESTING};
use crate::error::{Error, Result};
use crate::index::{build, defs_for, drop_def, new_def, save_def, ID_INDEX};
use crate::query::FindOptions;
use bson::{Bson, Document as BsonDocument};

impl Collection<'_> {
    /// Creates a secondary index and builds it over the existing documents; returns its
    /// name. `keys` is a key pattern such as `{"user.email": 1}` or `{"a": 1, "b": -1}`;
    /// `options` may hold `unique`, `sparse`, `name`, `partialFilterExpression` and
    /// `expireAfterSeconds`. Creating an index that exists with the same keys and options
    /// returns its name and changes nothing. A missing collection is created.
    ///
    /// The build runs inside one write transaction: readers keep reading their snapshots,
    /// other writers wait for it as for any write.
    ///
    /// Errors: [`Error::DuplicateKey`] when a unique index meets duplicates in the existing
    /// data (nothing is created), [`Error::InvalidArgument`] for a bad key pattern or option
    /// or a name taken by a different index.
    ///
    /// ```
    /// use nexus::{Database, Document};
    /// let db = Database::open_in_memory().unwrap();
    /// let users = db.collection("users");
    /// users.insert(Document::from_json(r#"{"email": "ada@example.com"}"#).unwrap()).unwrap();
    /// let name = users.create_index_json(r#"{"email": 1}"#, Some(r#"{"unique": true}"#)).unwrap();
    /// assert_eq!(name, "email_1");
    /// let dup = Document::from_json(r#"{"email": "ada@example.com"}"#).unwrap();
    /// assert!(users.insert(dup).is_err());
    /// ```
    pub fn create_index(&self, keys: &BsonDocument, options: &BsonDocument) -> Result<String> {
        check_collection_name(&self.name)?;
        // Before anything formats or copies them (both recurse).
        check_nesting(keys, MAX_QUERY_NESTING, "index keys")?;
        check_nesting(options, MAX_QUERY_NESTING, "index options")?;
        if keys.len() == 1 && keys.contains_key("_id") && options.is_empty() {
            // The primary key is the _id index; asking for it is a no-op (as in MongoDB).
            self.db.write(|t| self.ensure_table(t))?;
            return Ok(ID_INDEX.to_owned());
        }
        let mut def = new_def(&self.name, keys, options)?;
        self.db.write(|t| {
            let existing_defs = defs_for(t.as_read(), &self.name)?;
            def.seq = existing_defs.iter().map(|d| d.seq + 1).max().unwrap_or(1);
            for existing in existing_defs {
                if existing.name == def.name {
                    if existing.same_spec(&def) {
                        return Ok(existing.name.clone());
                    }
                    return Err(Error::invalid(format!(
                        "an index named '{}' exists on '{}' with different keys or options",
                        def.name, self.name
                    )));
                }
                if existing.key == def.key {
                    return Err(Error::invalid(format!(
                        "index {} already exists on '{}' with name '{}'",
                        crate::document::json::bson_to_json_text(&Bson::Document(def.key.clone())),
                        self.name,
                        existing.name
                    )));
                }
            }
            self.ensure_table(t)?;
            build(t, &mut def)?;
            save_def(t, &def)?;
            Ok(def.name.clone())
        })
    }

    /// [`Collection::create_index`] with JSON text (`options` `None` or empty: defaults).
    pub fn create_index_json(&self, keys: &str, options: Option<&str>) -> Result<String> {
        let keys = json_doc(keys, "index keys")?;
        let options = match options.map(str::trim) {
            None | Some("") => BsonDocument::new(),
            Some(text) => json_doc(text, "index options")?,
        };
        self.create_index(&keys, &options)
    }

    /// Drops the index called `name` (`"*"` drops every secondary index).
    ///
    /// Errors: [`Error::NotFound`] when there is no such index, [`Error::InvalidArgument`]
    /// for the `_id` index, [`Error::NoCollection`] when the collection does not exist.
    pub fn drop_index(&self, name: &str) -> Result<()> {
        if name == ID_INDEX {
            return Err(Error::invalid("cannot drop the _id index"));
        }
        self.db.write(|t| {
            if !t.has_table(&self.name) {
                return Err(Error::NoCollection(self.name.clone()));
            }
            let defs = defs_for(t.as_read(), &self.name)?;
            let mut found = false;
            for def in defs.iter().filter(|d| name == "*" || d.name == name) {
                drop_def(t, def)?;
                found = true;
            }
            if !found && name != "*" {
                return Err(Error::NotFound(format!(
                    "index '{name}' not found on '{}'",
                    self.name
                )));
            }
            Ok(())
        })
    }

    /// The collection's indexes as MongoDB lists them: `{"v": 2, "key": {...}, "name": ...}`
    /// plus the options that are set; the `_id` index first.
    ///
    /// Errors: [`Error::NoCollection`] when the collection does not exist.
    pub fn list_indexes(&self) -> Result<Vec<BsonDocument>> {
        self.db.read(|v| {
            if !v.has_table(&self.name) {
                return Err(Error::NoCollection(self.name.clone()));
            }
            let mut out = vec![bson::doc! {"v": 2, "key": {"_id": 1}, "name": ID_INDEX}];
            let mut defs = defs_for(v, &self.name)?;
            defs.sort_by_key(|d| d.seq);
            out.extend(defs.iter().map(|d| d.listing()));
            Ok(out)
        })
    }

    /// Runs the query the way `find` would and reports the plan: `queryPlanner`
    /// (`winningPlan`, `rejectedPlans`) and `executionStats` (`nReturned`,
    /// `totalKeysExamined`, `totalDocsExamined`), in MongoDB's explain shape.
    pub fn explain(&self, filter: &BsonDocument, options: FindOptions) -> Result<BsonDocument> {
        let r = crate::exec::explain::explain(
            self.db.snapshot()?,
            &self.name,
            filter,
            &options,
            self.db.closed_flag(),
        );
        options.dispose();
        r
    }
}

fn json_doc(text: &str, what: &str) -> Result<BsonDocument> {
    crate::document::json::parse_json_document(text, what)
}
