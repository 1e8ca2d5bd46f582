%% Records shared by the session server and its storage backends.

%% The fields carry no type annotations because the records also serve as match specification
%% heads (fields '_' or '$1'); their types are given in the comments.

%% One session. Both backends store this same record, so match specifications are shared.
%% expires_at and updated_at are Erlang system time in milliseconds (wall clock, comparable
%% across the nodes of a cluster); expires_at is `infinity' for a session that never expires
%% (atoms sort after integers, so `ExpiresAt > Now' holds for it).
-record(erl_peb_session, {
    id,          %% binary()
    data,        %% term()
    expires_at,  %% integer() | infinity
    version,     %% pos_integer()
    updated_at   %% integer()
}).

%% One lock lease on a session id.
-record(erl_peb_lock, {
    id,          %% binary()
    token,       %% binary()
    holder,      %% pid()
    expires_at   %% integer()
}).
