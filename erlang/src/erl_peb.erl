%% The Erlang API of the session server. Reads (get/1) go straight to the table; everything else
%% is a gen_server call carrying the same request term a remote client (the Node.js connection)
%% sends, so what is timed here is what a client gets, minus the network.
-module(erl_peb).

-export([start/0, start_server/0, start_server/1, boot/0, stop/0, server/0]).
-export([get/1, set/2, set/3, set/4, touch/2, destroy/1]).
-export([ids/2, all/2, count/0, clear/0, sweep/0, gc/1]).
-export([lock/3, unlock/2, with_lock/4]).
-export([status/0, join/1, call/1, call/2]).

-export_type([id/0, ttl/0, version/0, cursor/0]).

-type id() :: binary().
%% Milliseconds, `infinity', or `default' (the `default_ttl' setting).
-type ttl() :: pos_integer() | infinity | default.
-type version() :: pos_integer().
-type cursor() :: first | id().

-define(TIMEOUT, 30000).

%% --- starting --------------------------------------------------------------------------------

%% Starts the server with the configuration in the application environment; `ok' when it is
%% already running.
-spec start() -> ok | {error, term()}.
start() ->
    case application:ensure_all_started(erl_peb) of
        {ok, _} -> ok;
        {error, Reason} -> {error, start_error(Reason)}
    end.

%% The reason inside the application controller's and the supervisor's wrapping.
start_error({erl_peb, {Reason, {erl_peb_app, start, _}}}) -> start_error(Reason);
start_error({shutdown, {failed_to_start_child, _, Reason}}) -> start_error(Reason);
start_error(Reason) -> Reason.

-spec start_server() -> ok | {error, term()}.
start_server() ->
    start().

%% Starts the server with these settings over those of the application environment, e.g.
%% `erl_peb:start_server(#{backend => mnesia, copies => disc_copies, data_dir => "/var/lib/s"})'.
-spec start_server(map() | [{atom(), term()}]) -> ok | {error, term()}.
start_server(Options) when is_map(Options) ->
    start_server(maps:to_list(Options));
start_server(Options) when is_list(Options) ->
    case lists:keymember(erl_peb, 1, application:which_applications()) of
        true ->
            {error, already_started};
        false ->
            case check_options(Options) of
                ok ->
                    _ = application:load(erl_peb),
                    lists:foreach(fun({K, V}) -> application:set_env(erl_peb, K, V) end, Options),
                    start();
                {error, _} = Error ->
                    Error
            end
    end.

check_options([]) ->
    ok;
check_options([{Key, Value} | Rest]) when is_atom(Key) ->
    case lists:member(Key, erl_peb_config:keys()) of
        false ->
            {error, {unknown_option, Key}};
        true ->
            case erl_peb_config:validate(Key, Value) of
                {ok, _} -> check_options(Rest);
                error -> {error, {bad_option, Key, Value}}
            end
    end;
check_options([Other | _]) ->
    {error, {bad_option, Other}}.

%% For `erl ... -s erl_peb boot': starts the server or halts the node with status 1 and the reason
%% on standard error, so that a wrapper sees a failed start.
-spec boot() -> ok.
boot() ->
    case start() of
        ok ->
            {ok, #{backend := Backend}} = status(),
            io:format("erl_peb ready: ~ts ~p~n", [node(), Backend]);
        {error, Reason} ->
            io:format(standard_error, "erl_peb: the session server did not start: ~tp~n", [Reason]),
            %% An orderly stop, not halt/1: halt can cut off output (and logger's reports) still
            %% on their way out.
            init:stop(1)
    end.

-spec stop() -> ok | {error, term()}.
stop() ->
    application:stop(erl_peb).

%% The registered name of the server.
-spec server() -> atom().
server() ->
    application:get_env(erl_peb, server_name, erl_peb_sessions).

%% --- sessions --------------------------------------------------------------------------------

%% Reads from the table in the calling process. An expired session is `not_found' even before
%% the sweep removes it.
-spec get(id()) -> {ok, Data :: term(), ExpiresAt :: integer() | infinity, version()} | not_found.
get(Id) when is_binary(Id) ->
    {Mod, Ref} = erl_peb_session_server:store(),
    erl_peb_store:read(Mod, Ref, Id, erlang:system_time(millisecond)).

-spec set(id(), term()) -> {ok, version()} | {error, term()}.
set(Id, Data) ->
    set(Id, Data, default).

-spec set(id(), term(), ttl()) -> {ok, version()} | {error, term()}.
set(Id, Data, Ttl) ->
    call({set, Id, Data, Ttl}).

%% Compare-and-set: writes only if the session's version is still Expected (0: no session).
-spec set(id(), term(), ttl(), non_neg_integer()) ->
    {ok, version()} | {conflict, non_neg_integer()} | {error, term()}.
set(Id, Data, Ttl, Expected) ->
    call({set, Id, Data, Ttl, Expected}).

-spec touch(id(), ttl()) -> {ok, integer() | infinity} | not_found | {error, term()}.
touch(Id, Ttl) ->
    call({touch, Id, Ttl}).

-spec destroy(id()) -> ok | {error, term()}.
destroy(Id) ->
    call({destroy, Id}).

-spec ids(cursor(), pos_integer()) -> {ok, [id()], id() | done} | {error, term()}.
ids(Cursor, Limit) ->
    call({ids, Cursor, Limit}).

-spec all(cursor(), pos_integer()) ->
    {ok, [{id(), term(), integer() | infinity, version()}], id() | done} | {error, term()}.
all(Cursor, Limit) ->
    call({all, Cursor, Limit}).

-spec count() -> {ok, non_neg_integer()} | {error, term()}.
count() ->
    call(count).

-spec clear() -> ok | {error, term()}.
clear() ->
    call(clear).

%% Runs an expiry pass now; returns how many sessions it removed.
-spec sweep() -> {ok, non_neg_integer()} | {error, term()}.
sweep() ->
    call(sweep, infinity).

%% Removes the sessions not written or touched for MaxAgeMs milliseconds.
-spec gc(non_neg_integer()) -> {ok, non_neg_integer()} | {error, term()}.
gc(MaxAgeMs) ->
    call({gc, MaxAgeMs}, infinity).

%% --- lock leases -----------------------------------------------------------------------------

%% Takes the lock on Id for LeaseMs, waiting up to WaitMs for it. The lease ends at unlock/2,
%% after LeaseMs, or when the calling process dies.
-spec lock(id(), pos_integer(), non_neg_integer()) -> {ok, Token :: binary()} | timeout | {error, term()}.
lock(Id, LeaseMs, WaitMs) ->
    call({lock, Id, LeaseMs, WaitMs}, WaitMs + ?TIMEOUT).

-spec unlock(id(), binary()) -> ok | not_held | {error, term()}.
unlock(Id, Token) ->
    call({unlock, Id, Token}).

%% Runs Fun holding the lock on Id; `timeout' when the lock was not had within WaitMs.
-spec with_lock(id(), pos_integer(), non_neg_integer(), fun(() -> Result)) ->
    {ok, Result} | timeout | {error, term()}.
with_lock(Id, LeaseMs, WaitMs, Fun) ->
    case lock(Id, LeaseMs, WaitMs) of
        {ok, Token} ->
            try
                {ok, Fun()}
            after
                unlock(Id, Token)
            end;
        Other ->
            Other
    end.

%% --- cluster and status ----------------------------------------------------------------------

%% Node, backend, session count, cluster members and more: see erlang/README.md.
-spec status() -> {ok, map()} | {error, term()}.
status() ->
    call(status).

%% Mnesia backend: adds this node to Node's cluster and copies the session table here.
-spec join(node()) -> ok | {error, term()}.
join(Node) when is_atom(Node) ->
    call({join, Node}, infinity).

-spec call(term()) -> term().
call(Request) ->
    call(Request, ?TIMEOUT).

-spec call(term(), timeout()) -> term().
call(Request, Timeout) ->
    gen_server:call(server(), Request, Timeout).
