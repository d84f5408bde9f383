from sessiond.scripts import sessiond

sessiond()
