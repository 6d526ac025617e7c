"""Uploaded files, from the request to an accepted source picture and driving clip.

* ``receive``: streaming an upload to disk under a size limit, and a safe label for its name.
* ``validate``: the content checks (what the file really is, markup, polyglots, pixels, length).
* ``checks``: running those checks in a pool of separate processes, off the server's threads.

Nothing is imported here, so a check process loads only what the checks need, not the web stack.
"""
