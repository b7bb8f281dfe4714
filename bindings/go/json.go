package nexus

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
)

// M is a shorthand for an unordered JSON object, handy for filters and
// updates: nexus.M{"age": nexus.M{"$gte": 18}}.
type M = map[string]any

// E is one key/value element of an ordered document D.
type E struct {
	// Key is the field name.
	Key string
	// Value is any json.Marshal-able value.
	Value any
}

// D is an ordered JSON object. Use it where key order matters and a Go map
// would sort the keys, such as a sort specification over several fields:
//
//	nexus.D{{"age", -1}, {"name", 1}}
type D []E

// MarshalJSON encodes d as a JSON object with its keys in order.
func (d D) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, e := range d {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, err := marshal(e.Key)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		v, err := marshal(e.Value)
		if err != nil {
			return nil, err
		}
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// marshal is json.Marshal without HTML escaping and without the trailing newline.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// jsonArg converts a filter, update, document or option value to JSON text.
// string, []byte and json.RawMessage are taken as JSON text as they are;
// anything else goes through encoding/json. nil (and values that marshal to
// null) give "", which the C layer passes as NULL.
func jsonArg(what string, v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "", nil
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case json.RawMessage:
		return string(x), nil
	}
	b, err := marshal(v)
	if err != nil {
		return "", &Error{Code: CodeInvalidArgument, Message: fmt.Sprintf("cannot encode %s as JSON: %v", what, err)}
	}
	if string(b) == "null" {
		return "", nil
	}
	return string(b), nil
}

// requiredJSON is jsonArg for arguments that may not be nil (documents, updates).
func requiredJSON(what string, v any) (string, error) {
	s, err := jsonArg(what, v)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", &Error{Code: CodeInvalidArgument, Message: what + " must not be nil or empty"}
	}
	return s, nil
}

// jsonArray converts the argument of InsertMany to a JSON array. Slices of
// string or []byte are treated as slices of JSON documents.
func jsonArray(v any) (string, error) {
	switch x := v.(type) {
	case []string:
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.WriteString(s)
		}
		buf.WriteByte(']')
		return buf.String(), nil
	case [][]byte:
		return string(append(append([]byte{'['}, bytes.Join(x, []byte{','})...), ']')), nil
	case []json.RawMessage:
		var buf bytes.Buffer
		buf.WriteByte('[')
		for i, s := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(s)
		}
		buf.WriteByte(']')
		return buf.String(), nil
	}
	if v != nil {
		if k := reflect.TypeOf(v).Kind(); k == reflect.Slice || k == reflect.Array {
			if rv := reflect.ValueOf(v); k == reflect.Slice && rv.IsNil() {
				return "[]", nil
			}
		}
	}
	return requiredJSON("documents", v)
}

// decodeInto stores a JSON document (or value) into out. out may be nil
// (the value is dropped), *json.RawMessage, *[]byte or *string (the JSON
// text is stored), or anything json.Unmarshal accepts.
func decodeInto(raw []byte, out any) error {
	switch o := out.(type) {
	case nil:
		return nil
	case *json.RawMessage:
		*o = append(json.RawMessage(nil), raw...)
		return nil
	case *[]byte:
		*o = append([]byte(nil), raw...)
		return nil
	case *string:
		*o = string(raw)
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("nexus: decoding %.200s: %w", raw, err)
	}
	return nil
}

// decodeObject decodes a JSON object report (stats, check, explain, ...).
func decodeObject(raw []byte) (map[string]any, error) {
	var m map[string]any
	if err := decodeInto(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}
