"""MariaDB / MySQL sources: logical backups in one consistent snapshot, binlog archiving for
point-in-time recovery, physical backups with mariadb-backup, throwaway servers for restores."""
