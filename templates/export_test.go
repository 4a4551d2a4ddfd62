package templates

// RawLayer is the uncompressed layer of an assembled image, for the
// benchmark that compares it with a gzipped one.
var RawLayer = rawLayer
