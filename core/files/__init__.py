"""Client files: content encrypted with the client's own data key, in a storage target.

content.py seals and streams content as chunk objects; store.py opens the files store
from the configuration; repository.py adds, lists, opens and removes files, each
permission-checked and audited. How bytes reach the daemon is the daemon's business
(daemon/commands_files.py: bounded chunks through the control socket).
"""
