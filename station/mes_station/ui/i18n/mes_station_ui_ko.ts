<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE TS>
<TS version="2.1" language="ko_KR" sourcelanguage="en_US">
<context>
    <name>ActionsPanel</name>
    <message>
        <source>(optional)</source>
        <translation>(선택)</translation>
    </message>
    <message>
        <source>Fill in: {fields}</source>
        <translation>입력하세요: {fields}</translation>
    </message>
    <message>
        <source>Done: {summary}</source>
        <translation>완료: {summary}</translation>
    </message>
    <message>
        <source>Device actions</source>
        <translation>장치 동작</translation>
    </message>
</context>
<context>
    <name>DevicesPanel</name>
    <message>
        <source>Devices</source>
        <translation>장치</translation>
    </message>
    <message>
        <source>Print label  [Ctrl+P]</source>
        <translation>라벨 인쇄  [Ctrl+P]</translation>
    </message>
    <message>
        <source>Firmware</source>
        <translation>펌웨어</translation>
    </message>
    <message>
        <source>Start flash</source>
        <translation>플래시 시작</translation>
    </message>
    <message>
        <source>Firmware list</source>
        <translation>펌웨어 목록</translation>
    </message>
    <message>
        <source>Printing…</source>
        <translation>인쇄 중…</translation>
    </message>
    <message>
        <source>Label {status}</source>
        <translation>라벨 {status}</translation>
    </message>
    <message>
        <source>(job {job})</source>
        <translation>(작업 {job})</translation>
    </message>
    <message>
        <source>Print label</source>
        <translation>라벨 인쇄</translation>
    </message>
    <message>
        <source>Choose the firmware image to flash.</source>
        <translation>플래시할 펌웨어 이미지를 선택하세요.</translation>
    </message>
    <message>
        <source>Starting flash of {image}…</source>
        <translation>{image} 플래시 시작 중…</translation>
    </message>
    <message>
        <source>Flashing (job {job})…</source>
        <translation>플래시 중 (작업 {job})…</translation>
    </message>
    <message>
        <source>Flashing (job {job}): {state} {percent}%</source>
        <translation>플래시 중 (작업 {job}): {state} {percent}%</translation>
    </message>
    <message>
        <source>Flash done (job {job}).</source>
        <translation>플래시 완료 (작업 {job}).</translation>
    </message>
    <message>
        <source>Flash {state} (job {job})</source>
        <translation>플래시 {state} (작업 {job})</translation>
    </message>
    <message>
        <source>Flash status (job {job})</source>
        <translation>플래시 상태 (작업 {job})</translation>
    </message>
    <message>
        <source>Stopped watching; the job may still be running.</source>
        <translation>확인을 중단했습니다. 작업은 아직 진행 중일 수 있습니다.</translation>
    </message>
</context>
<context>
    <name>LoginScreen</name>
    <message>
        <source>NeuroHub MES — worker login</source>
        <translation>NeuroHub MES — 작업자 로그인</translation>
    </message>
    <message>
        <source>Username</source>
        <translation>사용자 이름</translation>
    </message>
    <message>
        <source>Password</source>
        <translation>비밀번호</translation>
    </message>
    <message>
        <source>username or badge</source>
        <translation>사용자 이름 또는 사원증</translation>
    </message>
    <message>
        <source>The server cannot be reached. Workers who logged in at this station in the last days can still log in.</source>
        <translation>서버에 연결할 수 없습니다. 최근 며칠 안에 이 스테이션에서 로그인한 작업자는 로그인할 수 있습니다.</translation>
    </message>
    <message>
        <source>The server did not accept your offline login. Enter your password again. ({code})</source>
        <translation>서버가 오프라인 로그인을 받아들이지 않았습니다. 비밀번호를 다시 입력하세요. ({code})</translation>
    </message>
    <message>
        <source>Enter your username and password.</source>
        <translation>사용자 이름과 비밀번호를 입력하세요.</translation>
    </message>
    <message>
        <source>Login</source>
        <translation>로그인</translation>
    </message>
    <message>
        <source>Logging in…</source>
        <translation>로그인 중…</translation>
    </message>
    <message>
        <source>Log in</source>
        <translation>로그인</translation>
    </message>
</context>
<context>
    <name>MainScreen</name>
    <message>
        <source>Log out</source>
        <translation>로그아웃</translation>
    </message>
    <message>
        <source>Code</source>
        <translation>코드</translation>
    </message>
    <message>
        <source>Scan or type a serial or LOT number, then Enter</source>
        <translation>시리얼 또는 LOT 번호를 스캔하거나 입력한 뒤 Enter</translation>
    </message>
    <message>
        <source>Look up</source>
        <translation>조회</translation>
    </message>
    <message>
        <source>Serial number</source>
        <translation>시리얼 번호</translation>
    </message>
    <message>
        <source>Next process</source>
        <translation>다음 공정</translation>
    </message>
    <message>
        <source>LOT</source>
        <translation>LOT</translation>
    </message>
    <message>
        <source>Product</source>
        <translation>제품</translation>
    </message>
    <message>
        <source>LOT status</source>
        <translation>LOT 상태</translation>
    </message>
    <message>
        <source>PASS</source>
        <translation>합격</translation>
    </message>
    <message>
        <source>FAIL</source>
        <translation>불합격</translation>
    </message>
    <message>
        <source>Defect code for FAIL (Alt+number)</source>
        <translation>불합격 불량 코드 (Alt+숫자)</translation>
    </message>
    <message>
        <source>History (newest first)</source>
        <translation>이력 (최신 순)</translation>
    </message>
    <message>
        <source>Worker: {worker} (logged in offline)</source>
        <translation>작업자: {worker} (오프라인 로그인)</translation>
    </message>
    <message>
        <source>Worker: {worker}</source>
        <translation>작업자: {worker}</translation>
    </message>
    <message>
        <source>Record scan {code}</source>
        <translation>스캔 기록 {code}</translation>
    </message>
    <message>
        <source>Looking up {code}…</source>
        <translation>{code} 조회 중…</translation>
    </message>
    <message>
        <source>Look up {code}</source>
        <translation>{code} 조회</translation>
    </message>
    <message>
        <source>— (checked when the server is back)</source>
        <translation>— (서버 복구 시 확인)</translation>
    </message>
    <message>
        <source>Choose a defect code to record a FAIL (Alt+number).</source>
        <translation>불합격을 기록하려면 불량 코드를 선택하세요 (Alt+숫자).</translation>
    </message>
    <message>
        <source>No worker logged in.</source>
        <translation>로그인한 작업자가 없습니다.</translation>
    </message>
    <message>
        <source>Saving…</source>
        <translation>저장 중…</translation>
    </message>
    <message>
        <source>this station</source>
        <translation>이 스테이션</translation>
    </message>
    <message>
        <source>NOT SAVED</source>
        <translation>저장 안 됨</translation>
    </message>
    <message>
        <source>Record result</source>
        <translation>결과 기록</translation>
    </message>
    <message>
        <source>REFUSED BY THE SERVER</source>
        <translation>서버가 거부함</translation>
    </message>
    <message>
        <source>SAVED</source>
        <translation>저장됨</translation>
    </message>
    <message>
        <source>QUEUED</source>
        <translation>대기 중</translation>
    </message>
    <message>
        <source>kept at this station, sent when the server answers</source>
        <translation>이 스테이션에 보관, 서버 응답 시 전송</translation>
    </message>
    <message>
        <source>queued</source>
        <translation>대기</translation>
    </message>
    <message>
        <source>saved</source>
        <translation>저장됨</translation>
    </message>
    <message>
        <source>refused</source>
        <translation>거부됨</translation>
    </message>
    <message>
        <source>{code}: not in this station&apos;s data (offline). A result is kept and checked when the server is back.</source>
        <translation>{code}: 이 스테이션 데이터에 없음 (오프라인). 결과는 보관되며 서버 복구 시 확인됩니다.</translation>
    </message>
    <message>
        <source>Scan a known unit first, so the station knows its process.</source>
        <translation>먼저 알려진 제품을 스캔하여 스테이션이 공정을 알 수 있게 하세요.</translation>
    </message>
    <message>
        <source>{code}: this code is not known. [UNKNOWN_CODE]</source>
        <translation>{code}: 알 수 없는 코드입니다. [UNKNOWN_CODE]</translation>
    </message>
    <message>
        <source>unit</source>
        <translation>제품 단위</translation>
    </message>
    <message>
        <source>From this station&apos;s data (offline).</source>
        <translation>이 스테이션 데이터 기준 (오프라인).</translation>
    </message>
    <message>
        <source>History</source>
        <translation>이력</translation>
    </message>
</context>
<context>
    <name>StationWindow</name>
    <message>
        <source>OFFLINE — results are kept here and sent when the server is back.</source>
        <translation>오프라인 — 결과는 여기에 보관되고 서버가 복구되면 전송됩니다.</translation>
    </message>
    <message>
        <source>Waiting: {depth}</source>
        <translation>대기: {depth}</translation>
    </message>
    <message>
        <source>data from {when}</source>
        <translation>데이터 기준 {when}</translation>
    </message>
    <message>
        <source>Completion files refused by the server: {count} (in quarantine, see mes-station status).</source>
        <translation>서버가 거부한 완료 파일: {count}개 (격리됨, mes-station status 참조).</translation>
    </message>
    <message>
        <source>Last: {name} — {reason}</source>
        <translation>최근: {name} — {reason}</translation>
    </message>
    <message>
        <source>AGENT ?</source>
        <translation>에이전트 ?</translation>
    </message>
    <message>
        <source>ONLINE</source>
        <translation>온라인</translation>
    </message>
    <message>
        <source>OFFLINE</source>
        <translation>오프라인</translation>
    </message>
</context>
<context>
    <name>view</name>
    <message>
        <source>When</source>
        <translation>시각</translation>
    </message>
    <message>
        <source>Process</source>
        <translation>공정</translation>
    </message>
    <message>
        <source>Action</source>
        <translation>동작</translation>
    </message>
    <message>
        <source>Result</source>
        <translation>결과</translation>
    </message>
    <message>
        <source>Defect</source>
        <translation>불량</translation>
    </message>
    <message>
        <source>Worker</source>
        <translation>작업자</translation>
    </message>
    <message>
        <source>Station</source>
        <translation>스테이션</translation>
    </message>
    <message>
        <source>— (routing complete or unknown)</source>
        <translation>— (공정 완료 또는 알 수 없음)</translation>
    </message>
    <message>
        <source>(as the unit before)</source>
        <translation>(이전 제품과 동일)</translation>
    </message>
    <message>
        <source>result</source>
        <translation>결과</translation>
    </message>
    <message>
        <source>scan</source>
        <translation>스캔</translation>
    </message>
    <message>
        <source>flash</source>
        <translation>플래시</translation>
    </message>
    <message>
        <source>print</source>
        <translation>인쇄</translation>
    </message>
    <message>
        <source>pass</source>
        <translation>합격</translation>
    </message>
    <message>
        <source>fail</source>
        <translation>불합격</translation>
    </message>
    <message>
        <source>success</source>
        <translation>성공</translation>
    </message>
    <message>
        <source>failure</source>
        <translation>실패</translation>
    </message>
    <message>
        <source>failed</source>
        <translation>실패</translation>
    </message>
    <message>
        <source>done</source>
        <translation>완료</translation>
    </message>
    <message>
        <source>registered</source>
        <translation>등록</translation>
    </message>
    <message>
        <source>status change</source>
        <translation>상태 변경</translation>
    </message>
    <message>
        <source>printed</source>
        <translation>인쇄됨</translation>
    </message>
    <message>
        <source>sent</source>
        <translation>전송됨</translation>
    </message>
    <message>
        <source>queued</source>
        <translation>대기</translation>
    </message>
    <message>
        <source>running</source>
        <translation>진행 중</translation>
    </message>
    <message>
        <source>pending</source>
        <translation>대기 중</translation>
    </message>
    <message>
        <source>cancelled</source>
        <translation>취소됨</translation>
    </message>
    <message>
        <source>error</source>
        <translation>오류</translation>
    </message>
    <message>
        <source>The server cannot be reached. The station keeps working offline.</source>
        <translation>서버에 연결할 수 없습니다. 스테이션은 오프라인으로 계속 작동합니다.</translation>
    </message>
    <message>
        <source>NOT SAVED: the station&apos;s disk is full. Call maintenance, then enter it again.</source>
        <translation>저장 안 됨: 스테이션 디스크가 가득 찼습니다. 설비 담당자를 부른 뒤 다시 입력하세요.</translation>
    </message>
    <message>
        <source>Wrong username or password.</source>
        <translation>사용자 이름 또는 비밀번호가 틀립니다.</translation>
    </message>
    <message>
        <source>The server cannot be reached, and this worker has no recent login at this station. Ask a supervisor.</source>
        <translation>서버에 연결할 수 없고, 이 작업자는 최근 이 스테이션에서 로그인한 기록이 없습니다. 관리자에게 문의하세요.</translation>
    </message>
    <message>
        <source>Not logged in, or the login has expired. Log in again.</source>
        <translation>로그인되어 있지 않거나 로그인이 만료되었습니다. 다시 로그인하세요.</translation>
    </message>
    <message>
        <source>This worker is not allowed to do this.</source>
        <translation>이 작업자에게는 권한이 없습니다.</translation>
    </message>
    <message>
        <source>This worker&apos;s account is disabled. Ask a supervisor.</source>
        <translation>이 작업자 계정은 비활성화되었습니다. 관리자에게 문의하세요.</translation>
    </message>
    <message>
        <source>This code is not known.</source>
        <translation>알 수 없는 코드입니다.</translation>
    </message>
    <message>
        <source>Not found.</source>
        <translation>찾을 수 없습니다.</translation>
    </message>
    <message>
        <source>This unit is not known.</source>
        <translation>알 수 없는 제품입니다.</translation>
    </message>
    <message>
        <source>This LOT is not known.</source>
        <translation>알 수 없는 LOT입니다.</translation>
    </message>
    <message>
        <source>This LOT is closed: nothing more can be recorded on it.</source>
        <translation>이 LOT은 마감되어 더 이상 기록할 수 없습니다.</translation>
    </message>
    <message>
        <source>The entry is incomplete or not valid.</source>
        <translation>입력이 불완전하거나 올바르지 않습니다.</translation>
    </message>
    <message>
        <source>The station&apos;s clock is wrong: this entry is kept at the station but not accepted. Tell maintenance.</source>
        <translation>스테이션 시계가 잘못되었습니다: 이 기록은 스테이션에 보관되었지만 접수되지 않았습니다. 유지보수 담당자에게 알리세요.</translation>
    </message>
    <message>
        <source>This device is not set up at this station, or its driver did not start.</source>
        <translation>이 장치가 스테이션에 설정되지 않았거나 드라이버가 시작되지 않았습니다.</translation>
    </message>
    <message>
        <source>The device reported a problem.</source>
        <translation>장치에서 문제를 보고했습니다.</translation>
    </message>
    <message>
        <source>The label template is not stored at this station and the server cannot be reached.</source>
        <translation>라벨 템플릿이 이 스테이션에 저장되어 있지 않고 서버에 연결할 수 없습니다.</translation>
    </message>
    <message>
        <source>The label template does not exist.</source>
        <translation>라벨 템플릿이 없습니다.</translation>
    </message>
    <message>
        <source>The firmware image does not exist.</source>
        <translation>펌웨어 이미지가 없습니다.</translation>
    </message>
    <message>
        <source>A flash is already running for this unit.</source>
        <translation>이 제품에 이미 플래시가 진행 중입니다.</translation>
    </message>
    <message>
        <source>The server is busy or being maintained. Try again in a moment.</source>
        <translation>서버가 바쁘거나 점검 중입니다. 잠시 후 다시 시도하세요.</translation>
    </message>
    <message>
        <source>No answer in time. Try again.</source>
        <translation>제때 응답이 없습니다. 다시 시도하세요.</translation>
    </message>
    <message>
        <source>This station&apos;s agent cannot do this yet.</source>
        <translation>이 스테이션의 에이전트는 아직 이 기능을 지원하지 않습니다.</translation>
    </message>
    <message>
        <source>Something unexpected went wrong. Tell maintenance the code shown.</source>
        <translation>예상치 못한 오류가 발생했습니다. 표시된 코드를 설비 담당자에게 알려 주세요.</translation>
    </message>
    <message>
        <source>Queue: ?</source>
        <translation>대기열: ?</translation>
    </message>
    <message>
        <source>Queue: {depth}</source>
        <translation>대기열: {depth}</translation>
    </message>
    <message>
        <source>Queue: {depth} (oldest {age})</source>
        <translation>대기열: {depth} (가장 오래된 것 {age})</translation>
    </message>
    <message>
        <source>{n} s</source>
        <translation>{n}초</translation>
    </message>
    <message>
        <source>{n} min</source>
        <translation>{n}분</translation>
    </message>
    <message>
        <source>{n} h</source>
        <translation>{n}시간</translation>
    </message>
</context>
</TS>
