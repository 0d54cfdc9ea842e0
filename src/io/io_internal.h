/* Private helpers shared by the writers of src/io. */
#ifndef JADE_IO_INTERNAL_H
#define JADE_IO_INTERNAL_H
/* Best effort: make a rename durable by syncing the directory that contains path. */
void jade_sync_parent_dir(const char *path);
#endif
