"""Storage: the schema, the two backends and bulk reading/writing of the site frame."""
