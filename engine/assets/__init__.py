"""Projects and their assets: the project folder, content-addressed files, search."""
